"""Session fixtures shared by every test folder: the embedded reference server, its model loaded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_server import embedded
from reference_server.embedded import engine_for, serve_in_thread
from reference_server.engine import Engine

# One llama.cpp thread in tests: its threads spin at barriers, so when anything else wants the CPU (a proxy
# subprocess, a second test run, a busy CI host) a server using every core slows down by an order of
# magnitude. With one thread the suite is a little slower on a quiet machine and steady on a loaded one.
TEST_THREADS = 1


@pytest.fixture(scope="session")
def reference_engine() -> Engine:
    """The model engine behind the session's reference server (loaded once)."""
    return engine_for(threads=TEST_THREADS)


@pytest.fixture(scope="session")
def reference_base_url(reference_engine: Engine) -> Iterator[str]:
    """Base URL (no /v1) of the reference server running in this process on a free port."""
    with serve_in_thread(threads=TEST_THREADS) as url:
        yield url


@pytest.fixture(scope="session")
def reference_model_id(reference_engine: Engine) -> str:
    """The id the reference server gives its default model, e.g. "smollm2-135m-instruct"."""
    return reference_engine.info.id


@pytest.fixture(scope="session")
def jit_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory in LM Studio's layout holding a second model, key "smollm2-jit": a symlink of SmolLM2."""
    return embedded.jit_models_dir(tmp_path_factory.mktemp("models"))
