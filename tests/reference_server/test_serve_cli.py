"""`conformance serve` argument errors: one clear line, exit status 2, no traceback."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from conformance.cli import main
from reference_server.embedded import serve_subprocess
from reference_server.model import default_model_path


def test_missing_model_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", str(tmp_path / "nope.gguf"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_non_gguf_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "model.bin"
    fake.write_bytes(b"\x00" * 16)
    assert main(["serve", "--model", str(fake), "--port", "0"]) == 2
    assert "not a GGUF" in capsys.readouterr().err


def test_tiny_context_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--ctx", "8", "--port", "0"]) == 2
    assert "--ctx" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--ttl", "0"], "--ttl"),
        (["--ttl", "-3"], "--ttl"),
        (["--max-jit-models", "0"], "--max-jit-models"),
        (["--models-dir", "/nonexistent/models"], "--models-dir"),
    ],
)
def test_bad_lifecycle_flags_exit_2_naming_the_flag(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "0", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_models_dir_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "models"
    file.write_text("")
    assert main(["serve", "--port", "0", "--models-dir", str(file)]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_serve_jit_loads_from_models_dir_unloads_after_ttl_and_evicts(tmp_path: Path) -> None:
    """`conformance serve --models-dir --ttl --max-jit-models` end to end, states read from /api/v0/models."""
    models = tmp_path / "models"
    for name in ("alpha", "beta"):
        target = models / "local" / name / f"{name}.Q4_1.gguf"
        target.parent.mkdir(parents=True)
        target.symlink_to(default_model_path())
    flags = ["--threads", "1", "--ctx", "512", "--models-dir", str(models), "--ttl", "1", "--max-jit-models", "1"]
    with (
        serve_subprocess(tmp_path / "serve.log", *flags) as running,
        httpx.Client(base_url=running.url, timeout=120) as client,
    ):

        def states() -> dict[str, str]:
            return {row["id"]: row["state"] for row in client.get("/api/v0/models").json()["data"]}

        def complete(model: str, **extra: object) -> None:
            body = {"model": model, "prompt": "Hi", "max_tokens": 2, "temperature": 0, **extra}
            assert client.post("/v1/completions", json=body).status_code == 200

        assert states() == {"smollm2-135m-instruct": "loaded", "alpha": "not-loaded", "beta": "not-loaded"}
        complete("alpha", ttl=600)
        assert states()["alpha"] == "loaded"
        complete("beta")  # a second JIT model: alpha, the least recently used, is evicted
        assert states() == {"smollm2-135m-instruct": "loaded", "alpha": "not-loaded", "beta": "loaded"}
        deadline = time.monotonic() + 120
        while states()["beta"] == "loaded":  # --ttl 1: beta unloads once idle
            assert time.monotonic() < deadline, "beta was never unloaded after its 1 s ttl"
            time.sleep(0.05)
        assert states()["smollm2-135m-instruct"] == "loaded"  # the start-up model has no ttl
        complete("beta")
        assert states()["beta"] == "loaded"
        assert running.alive()
