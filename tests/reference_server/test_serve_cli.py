"""`conformance serve` argument errors: one clear line, exit status 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main


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
