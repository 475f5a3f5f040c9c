"""0.3.14/presets: an unknown preset must be refused; with --preset, naming it must change the answer."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.catalog import by_id
from conformance.catalog.coverage import exercises
from conformance.check import Check, RequestSpec, Status, Target
from conformance.cli import build_parser
from conformance.exchange import Exchange
from conformance.runner import applicable, judge_check, run_item
from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange
from conformance.verdicts.presets import UNKNOWN_PRESET_PREFIX
from reference_server.embedded import serve_in_thread
from reference_server.engine import Engine
from reference_server.presets import write_conformance_preset
from tests.conformance.conftest import PRESET, TARGET, FakeServer, Wire, run_plan
from tests.conftest import TEST_THREADS

pytest_plugins = ["pytester"]

ITEM = by_id(ids.PRESETS)


def _check(check_id: str) -> Check:
    return next(c for c in ITEM.checks if c.id == check_id)


UNKNOWN = _check("unknown-preset-refused")
NAMED = _check("named-preset-applies")


def _judge(check: Check, server: Callable[[RequestSpec], Exchange], target: Target = TARGET) -> Any:
    return judge_check(check, run_plan(check, server, target)).result


# ---- (a) an unknown preset ----------------------------------------------------------------------------------


def test_an_unknown_preset_refused_with_an_error_passes() -> None:
    assert _judge(UNKNOWN, FakeServer()).status == Status.PASS


def test_an_ignored_unknown_preset_fails_showing_the_answer() -> None:
    result = _judge(UNKNOWN, FakeServer(["ignore_presets"]))
    assert result.status == Status.FAIL
    assert result.message.startswith(f"the request names preset '{UNKNOWN_PRESET_PREFIX}")
    evidence = result.evidence[0]
    assert evidence["item"] == ids.PRESETS
    assert evidence["pointer"] == "/preset"
    assert evidence["seen"] == "Hello! How can I help you today?"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, {"error": {"message": "boom"}}, "is a client error, but the server answered 500"),
        (400, "Bad Request", "was refused with 400 but without an error body"),
    ],
)
def test_an_unknown_preset_refused_badly_fails(status: int, body: Any, message: str) -> None:
    def server(spec: RequestSpec) -> Exchange:
        return Wire.plain(spec.body, body, status=status)

    result = _judge(UNKNOWN, server)
    assert result.status == Status.FAIL
    assert message in result.message


def test_a_server_ignoring_presets_is_skipped_unless_lmstudio_is_expected() -> None:
    run = judge_check(UNKNOWN, run_plan(UNKNOWN, FakeServer(["ignore_presets"]), TARGET))
    skipped = applicable(ITEM, TARGET, run).result
    assert skipped.status == Status.SKIP
    assert "the server ignores `preset`" in skipped.message
    expected = replace(TARGET, expect=frozenset({"lmstudio"}))
    assert applicable(ITEM, expected, run).result.status == Status.FAIL


def test_a_request_naming_no_unknown_preset_does_not_exercise_the_refusal() -> None:
    plain = Wire.plain(Wire.chat_request(), Wire.completion())
    result = judge_check(UNKNOWN, [plain]).result
    assert result.status == Status.SKIP
    assert result.message == "not exercised: the request names no preset that cannot exist"


def test_the_rule_judges_recorded_traffic_and_only_the_suites_probe() -> None:
    probe = Wire.chat_request(preset=UNKNOWN_PRESET_PREFIX + "abc")
    served = Wire.plain(probe, Wire.completion("Hi."))
    assert [f.check for f in validate_exchange(served)] == ["unknown-preset-refused"]
    refused = Wire.plain(probe, {"error": {"message": "no preset"}}, status=400)
    assert validate_exchange(refused) == []
    assert exercises(ids.PRESETS, refused)
    real = Wire.plain(Wire.chat_request(preset="@local:mine"), Wire.completion("Hi."))
    assert validate_exchange(real) == []
    assert not exercises(ids.PRESETS, real)  # a recording cannot show what a real preset should change


# ---- (b) the run's preset ------------------------------------------------------------------------------------


def test_without_a_preset_the_named_check_sends_nothing_and_is_not_exercised() -> None:
    target = replace(TARGET, preset=None)
    assert run_plan(NAMED, FakeServer(), target) == []
    result = _judge(NAMED, FakeServer(), target)
    assert (result.status, result.message) == (Status.SKIP, "not exercised: no --preset given")
    assert len(run_plan(UNKNOWN, FakeServer(), target)) == 1  # (a) still runs


def test_the_named_preset_applies_when_the_answer_changes() -> None:
    exchanges = run_plan(NAMED, FakeServer(), TARGET)
    assert [e.request.json.get("preset") for e in exchanges] == [None, PRESET, None]
    assert all(e.request.json["max_tokens"] <= 48 for e in exchanges)
    assert judge_check(NAMED, exchanges).result.status == Status.PASS


def test_an_ignored_named_preset_fails_showing_the_answer() -> None:
    result = _judge(NAMED, FakeServer(["ignore_presets"]))
    assert result.status == Status.FAIL
    assert result.message.startswith(f"naming preset '{PRESET}' changed nothing")
    seen = result.evidence[0]["seen"]
    assert seen["content"] == "Hello! How can I help you today?"
    assert result.evidence[0]["exchange"] == 1


def test_a_refused_named_preset_fails_naming_it() -> None:
    result = _judge(NAMED, FakeServer(), replace(TARGET, preset="@local:missing"))
    assert result.status == Status.FAIL
    assert "refused the request naming preset '@local:missing' with 400" in result.message


def test_an_unsteady_server_leaves_the_named_preset_not_exercised() -> None:
    result = _judge(NAMED, FakeServer(["nondeterministic"]))
    assert result.status == Status.SKIP
    assert "without the preset got two different answers" in result.message


def test_run_and_the_plugin_take_a_preset() -> None:
    args = build_parser().parse_args(["run", "--preset", "@local:terse"])
    assert args.preset == "@local:terse"
    assert build_parser().parse_args(["run"]).preset is None


_PLUGIN_CONFTEST = """
import httpx
import pytest


@pytest.fixture(scope="session")
def conformance_http_client():
    def handler(request):
        return httpx.Response(200, json={"data": [{"id": "tiny-model", "owned_by": "tiny"}]})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        yield client


def test_target(conformance_target):
    assert conformance_target.preset == "@local:x"
"""


def test_the_plugin_option_sets_the_targets_preset(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    importlib.import_module("httpcore")  # see tests/conformance/test_plugin.py
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(_PLUGIN_CONFTEST)
    pytester.makepyfile("")
    result = pytester.runpytest(
        "-p",
        "conformance.plugin",
        "--conformance-base-url",
        "http://fake.test",
        "--conformance-preset=@local:x",  # pytest reads a lone "@..." argument as a file of arguments
        "-k",
        "test_target",
        "conftest.py",
    )
    result.assert_outcomes(passed=1)


# ---- against the reference server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def preset_server(reference_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("presets")
    name = write_conformance_preset(directory)
    with serve_in_thread(threads=TEST_THREADS, presets_dir=directory) as url:
        yield url, name


def test_the_reference_server_passes_both_checks(preset_server: Any, reference_model_id: str) -> None:
    url, name = preset_server
    target = Target(base_url=url, model=reference_model_id, preset=name)
    with httpx.Client(timeout=120) as client:
        result = run_item(client, target, ITEM)
    assert [(c.id, c.status, c.message) for c in result.checks] == [
        ("unknown-preset-refused", Status.PASS, ""),
        ("named-preset-applies", Status.PASS, ""),
    ]


def test_the_conformance_preset_file_is_lm_studio_layout(tmp_path: Path) -> None:
    name = write_conformance_preset(tmp_path)
    data = json.loads((tmp_path / f"{name}.preset.json").read_text())
    assert data["identifier"] == "@local:conformance-test"
    assert {f["key"] for f in data["operation"]["fields"]} == {
        "llm.prediction.systemPrompt",
        "llm.prediction.maxPredictedTokens",
    }
