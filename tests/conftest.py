"""Session fixtures shared by every test folder: the embedded reference server, its model loaded once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reference_server.embedded import engine_for, serve_in_thread


@pytest.fixture(scope="session")
def reference_base_url() -> Iterator[str]:
    """Base URL (no /v1) of the reference server running in this process on a free port."""
    with serve_in_thread() as url:
        yield url


@pytest.fixture(scope="session")
def reference_model_id() -> str:
    """The id the reference server gives its default model, e.g. "smollm2-135m-instruct"."""
    return engine_for().info.id
