"""Tests for conformance/plugin.py: pytest inside pytest (pytester) with a tiny catalog and a mock server."""

from __future__ import annotations

import importlib
import socket
import sys
import types
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from conformance.check import Check, Item, Kind, RequestSpec, send_all
from conformance.exchange import Exchange
from conformance.findings import Finding

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _httpcore_loaded_outside() -> None:
    """An in-process pytester run drops the modules it imported; httpx caches httpcore's exception
    classes on first use, so httpcore must not be imported first inside an inner run."""
    importlib.import_module("httpcore")


# The server under test, as the inner session's conftest: it overrides `conformance_http_client`
# with a mock transport, which is also how users plug in their own client.
CONFTEST = """
import httpx
import pytest


def handler(request):
    if request.url.path == "/v1/models":
        return httpx.Response(200, json={"data": [{"id": "tiny-model", "owned_by": "tiny"}]})
    return httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]})


@pytest.fixture(scope="session")
def conformance_http_client():
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        yield client
"""


def _listed(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    return ()


def _usage(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    yield Finding(
        item="0.0.1/chat",
        check="usage",
        message="no usage in the response",
        endpoint="/v1/chat/completions",
        pointer="/usage",
        expected="an object",
    )


def _broken(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    raise KeyError("choices")


def _item(item_id: str, *checks: tuple[str, Any], **kw: Any) -> Item:
    plan = send_all(RequestSpec("POST", "/v1/chat/completions", body={"messages": []}))
    built = tuple(Check(id=c, item=item_id, title=c, plan=plan, verdict=v) for c, v in checks)
    return Item(
        id=item_id, version=item_id.split("/")[0], title=item_id, kind=kw.pop("kind", Kind.API), checks=built, **kw
    )


ITEMS = (
    _item("base/models", ("listed", _listed)),
    _item("0.0.1/chat", ("usage", _usage)),
    _item("0.0.2/cli", ("c", _listed), skip_reason="CLI feature: not an API", kind=Kind.CLI),
    _item("0.0.3/none"),
    _item("0.0.4/qwen", ("think", _listed), kind=Kind.MODEL_SPECIFIC, model_families=("qwen3",)),
    _item("0.0.5/broken", ("bug", _broken)),
)


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytest session that loads only this plugin, over the tiny catalog."""
    module = types.ModuleType("conformance.catalog")
    module.ITEMS = ITEMS  # type: ignore[attr-defined]  # a stand-in for the real catalog
    monkeypatch.setitem(sys.modules, "conformance.catalog", module)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(CONFTEST)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "conformance.plugin", "--strict-markers", "--conformance-base-url", "http://fake.test", *args
    )


def test_each_check_is_a_test_with_the_cli_verdicts(inner: pytest.Pytester) -> None:
    result = _run(inner, "-v", "-rs")
    result.assert_outcomes(passed=1, failed=2, skipped=3)
    result.stdout.fnmatch_lines_random(
        [
            "base/models::listed PASSED*",
            "0.0.1/chat::usage FAILED*",
            "0.0.2/cli::c SKIPPED*",
            "0.0.3/none::item SKIPPED*",
            "0.0.4/qwen::think SKIPPED*",
            "0.0.5/broken::bug FAILED*",
            "SKIPPED [[]1[]] *: CLI feature: not an API",
            "SKIPPED [[]1[]] *: not covered: no checks yet",
            "SKIPPED [[]1[]] *: model-specific: runs only for qwen3 models",
        ]
    )


def test_a_failure_shows_the_evidence_not_plugin_internals(inner: pytest.Pytester) -> None:
    result = _run(inner, "--conformance-only", "0.0.1,0.0.5")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ usage (0.0.1/chat) _*",
            "[[]0.0.1/chat[]] usage: no usage in the response",
            "  endpoint: /v1/chat/completions",
            "  at: /usage",
            "  expected: an object",
            "*_ bug (0.0.5/broken) _*",
            "verdict raised KeyError: 'choices'",
        ]
    )
    assert "_raise_for" not in result.stdout.str()


def test_junitxml_has_one_testcase_per_check(inner: pytest.Pytester) -> None:
    result = _run(inner, "--junitxml=out.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = ET.parse(inner.path / "out.xml").getroot().iter("testcase")
    outcomes = {(c.get("classname"), c.get("name")): [child.tag for child in c] for c in cases}
    assert outcomes == {
        ("base.models", "listed"): [],
        ("0.0.1.chat", "usage"): ["failure"],
        ("0.0.2.cli", "c"): ["skipped"],
        ("0.0.3.none", "item"): ["skipped"],
        ("0.0.4.qwen", "think"): ["skipped"],
        ("0.0.5.broken", "bug"): ["failure"],
    }


@pytest.mark.parametrize(
    ("args", "selected"),
    [
        (["-k", "0.0.1"], ["0.0.1/chat::usage"]),
        (["-k", "models or broken"], ["base/models::listed", "0.0.5/broken::bug"]),
        (["-m", "conformance_version(version='0.0.4')"], ["0.0.4/qwen::think"]),
        (["-m", "conformance_kind(kind='cli')"], ["0.0.2/cli::c"]),
        (["--conformance-only", "0.0.3,0.0.1/chat::usage"], ["0.0.1/chat::usage", "0.0.3/none::item"]),
    ],
)
def test_selection_by_keyword_marker_and_only(inner: pytest.Pytester, args: list[str], selected: list[str]) -> None:
    result = _run(inner, "--collect-only", "-q", *args)
    assert [line for line in result.stdout.lines if "::" in line] == selected


def test_an_only_matching_nothing_is_a_usage_error(inner: pytest.Pytester) -> None:
    result = _run(inner, "--conformance-only", "9.9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --conformance-only '9.9' matches no item or check*"])
    result = _run(inner, "--conformance-only", " , ")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --conformance-only ' , ' names no item*"])


def test_an_unreachable_server_stops_the_session_with_one_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("conformance.catalog")
    module.ITEMS = ITEMS[:2]  # type: ignore[attr-defined]  # a stand-in for the real catalog
    monkeypatch.setitem(sys.modules, "conformance.catalog", module)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = pytester.runpytest("-p", "conformance.plugin", "--conformance-base-url", f"http://127.0.0.1:{port}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*conformance: cannot reach http://127.0.0.1:{port}: connection refused*"])
    result.assert_outcomes()


def test_without_base_url_nothing_is_collected_or_changed(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_own="def test_own():\n    assert True\n")
    result = inner.runpytest("-p", "conformance.plugin", "--strict-markers", "--collect-only", "-q")
    assert [line for line in result.stdout.lines if "::" in line] == ["test_own.py::test_own"]
    inner.runpytest("-p", "conformance.plugin", "--strict-markers").assert_outcomes(passed=1)


def test_the_options_are_in_their_own_help_group(inner: pytest.Pytester) -> None:
    result = inner.runpytest("-p", "conformance.plugin", "--help")
    result.stdout.fnmatch_lines(
        [
            "LLM server conformance (llm-conformance):",
            "*--conformance-base-url=URL*",
            "*--conformance-model=ID*",
            "*--conformance-api-key=KEY*",
            "*--conformance-only=IDS*",
        ]
    )


def test_a_failure_shows_the_request_and_a_curl_command(inner: pytest.Pytester) -> None:
    result = _run(inner, "--conformance-only", "0.0.1,0.0.5")
    result.stdout.fnmatch_lines(
        [
            "*_ usage (0.0.1/chat) _*",
            "[[]0.0.1/chat[]] usage: no usage in the response",
            "request: POST http://fake.test/v1/chat/completions",
            "  content-type: application/json",
            '  body: {"messages": []}',
            "reproduce (reads $CONFORMANCE_API_KEY when the key was redacted):",
            "curl -sS http://fake.test/v1/chat/completions \\",
            "  -H 'content-type: application/json' \\",
            "  --data-binary '{\"messages\": []}'",
            "*_ bug (0.0.5/broken) _*",
            "verdict raised KeyError: 'choices'",
            "request: POST http://fake.test/v1/chat/completions",
        ]
    )


def test_warnings_of_a_passing_check_are_pytest_warnings_not_failures() -> None:
    from conformance.check import Status
    from conformance.findings import WARNING
    from conformance.plugin import ConformanceWarning, _raise_for
    from conformance.results import CheckResult

    warning = Finding("0.3.20/seed", "same-seed", "two answers differ for one seed", severity=WARNING)
    with pytest.warns(ConformanceWarning, match=r"\[0.3.20/seed\] same-seed: warning: two answers differ"):
        _raise_for(CheckResult("same-seed", Status.PASS, "", (warning.to_dict(),)))
