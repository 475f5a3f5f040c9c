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
