"""Live: `conformance run` without --base-url starts the reference server with a second model, a short-lived
preset directory and a token, so the lifecycle items run and pass on it."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.catalog import by_id
from conformance.check import Status, Target
from conformance.cli import main
from conformance.runner import default_client, run_check
from reference_server.embedded import jit_models_dir, serve_in_thread
from tests.conformance.conftest import TTL_SHAPE
from tests.conftest import TEST_THREADS


def test_the_lifecycle_items_pass_on_the_embedded_server(tmp_path: Path) -> None:
    only = "0.3.9/ttl,0.3.16/model-capabilities,0.4.0/auth-tokens"
    assert main(["run", "--only", only, "--report-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    statuses = {item["id"]: (item["status"], item.get("reason")) for item in report["items"]}
    assert statuses == dict.fromkeys(only.split(","), ("pass", None))
    ttl = next(item for item in report["items"] if item["id"] == "0.3.9/ttl")
    assert ttl["checks"][0]["shape"] == TTL_SHAPE


def test_ttl_passes_on_the_reference_server_with_a_second_model(tmp_path: Path, reference_model_id: str) -> None:
    """The check JIT-loads `smollm2-jit` with ttl 2, sees it unload, and loads it again."""
    item = by_id("0.3.9/ttl")
    models = jit_models_dir(tmp_path / "models")
    with (
        serve_in_thread(threads=TEST_THREADS, models_dir=models, ttl=3600, max_jit_models=1) as url,
        default_client() as client,
    ):
        result = run_check(client, Target(url, reference_model_id), item.checks[0], item=item)
    assert (result.status, result.message) == (Status.PASS, ""), result.evidence
    assert result.shape == TTL_SHAPE
