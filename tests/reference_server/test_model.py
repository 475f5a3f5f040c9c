"""Locating and validating GGUF files, and the model id derived from the file name."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.errors import UsageError
from reference_server.model import check_gguf, default_model_path, model_id_for, quantization_for


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct"),
        ("qwen2.5-7b-instruct-q4_k_m.gguf", "qwen2.5-7b-instruct"),
        ("Llama-3.2-1B-Instruct-F16.gguf", "llama-3.2-1b-instruct"),
        ("plain.gguf", "plain"),
    ],
)
def test_model_id_from_file_name(name: str, expected: str) -> None:
    assert model_id_for(Path(name)) == expected


def test_quantization_from_name_then_metadata() -> None:
    assert quantization_for(Path("x.Q4_1.gguf"), {}) == "Q4_1"
    assert quantization_for(Path("x.gguf"), {"general.file_type": "7"}) == "Q8_0"


def test_default_model_is_the_packaged_smollm2() -> None:
    path = default_model_path()
    assert path.name.endswith(".gguf")
    assert check_gguf(path) == path.resolve()


def test_missing_and_non_gguf_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        check_gguf(tmp_path / "missing.gguf")
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(UsageError, match="not a GGUF"):
        check_gguf(text)
    with pytest.raises(UsageError, match="not a file"):
        check_gguf(tmp_path)
