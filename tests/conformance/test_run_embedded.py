"""Live: `conformance run` without --base-url starts the reference server with a second model, a short-lived
preset directory and a token, so the lifecycle items run and pass on it."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import pytest

from conformance.cli import main
from reference_server.embedded import serve_in_thread

_NEEDED = {"models_dir", "ttl", "max_jit_models", "presets_dir"}
needs_merged_server = pytest.mark.skipif(
    not set(inspect.signature(serve_in_thread).parameters) >= _NEEDED
    or importlib.util.find_spec("reference_server.presets") is None,
    reason="the embedded server's models_dir/ttl/max_jit_models (branch lifecycle) and presets_dir "
    "(branch presets) are not merged yet",
)
"""For tests of `conformance run` on the embedded server, which it starts with those keywords."""


@needs_merged_server
def test_the_lifecycle_items_pass_on_the_embedded_server(tmp_path: Path) -> None:
    only = "0.3.9/ttl,0.3.16/model-capabilities,0.4.0/auth-tokens"
    assert main(["run", "--only", only, "--report-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    statuses = {item["id"]: (item["status"], item.get("reason")) for item in report["items"]}
    assert statuses == dict.fromkeys(only.split(","), ("pass", None))
    ttl = next(item for item in report["items"] if item["id"] == "0.3.9/ttl")
    assert ttl["checks"][0]["shape"] == [
        ["list", 200],
        ["request", 200, True],
        ["state", 200, "loaded"],
        ["state", 200, "not-loaded"],
        ["request", 200, True],
        ["state", 200, "loaded"],
    ]
