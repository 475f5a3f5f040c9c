"""Tests for conformance/runner.py: statuses, errors, timings and observer calls, over a mock transport."""

from __future__ import annotations

import json
import sys
import time
import types
from collections.abc import Generator, Iterable, Sequence
from dataclasses import replace
from typing import Any

import httpx
import pytest

from conformance.check import LMSTUDIO, Check, Item, Kind, RequestSpec, Status, Target, send_all
from conformance.exchange import Exchange
from conformance.findings import WARNING, ConformanceFailure, Finding
from conformance.results import CheckResult, ItemResult
from conformance.runner import item_skip_reason, run_catalog, run_check, run_item

TARGET = Target(base_url="http://fake.test", model="tiny-model", server="fake/1.0")
ITEM = "0.0.1/tiny"


def _handler(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/models":
        return httpx.Response(200, json={"object": "list", "data": [{"id": "tiny-model", "owned_by": "fake"}]})
    if request.url.path == "/v1/slow":
        time.sleep(0.02)
        return httpx.Response(200, json={"ok": True})
    if request.url.path == "/v1/echo":
        return httpx.Response(200, json={"id": "resp_1", "got": json.loads(request.content or b"null")})
    if request.url.path == "/v1/stream":
        chunks = [b'data: {"n": 1}\n\nda', b'ta: {"n": 2}\n\n', b"data: [DONE]\n\n"]
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(chunks))
    if request.url.path == "/v1/gzip":
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=b"not gzip")
    if request.url.path == "/v1/drop":
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
    return httpx.Response(404, json={"error": {"message": "not found"}})


@pytest.fixture
def client() -> Iterable[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(_handler)) as http:
        yield http


def _finding(message: str) -> Finding:
    return Finding(item=ITEM, check="c", message=message, endpoint="/v1/echo", pointer="/got")


def _no_findings(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    return ()


def _check(check_id: str = "c", *, plan: Any = None, verdict: Any = _no_findings, shape: Any = None) -> Check:
    plan = plan or send_all(RequestSpec("GET", "/v1/models"))
    return Check(id=check_id, item=ITEM, title="tiny", plan=plan, verdict=verdict, shape=shape)


def _item(*checks: Check, **kw: Any) -> Item:
    return Item(id=ITEM, version="0.0.1", title="Tiny", kind=kw.pop("kind", Kind.API), checks=checks, **kw)


def test_a_check_without_findings_passes(client: httpx.Client) -> None:
    result = run_check(client, TARGET, _check())
    assert (result.status, result.message, tuple(result.evidence)) == (Status.PASS, "", ())


def test_findings_fail_the_check_with_the_first_message_and_all_evidence(client: httpx.Client) -> None:
    def verdict(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
        yield _finding("first problem")
        yield _finding("second problem")

    result = run_check(client, TARGET, _check(verdict=verdict))
    assert result.status == Status.FAIL
    assert result.message == "first problem"
    assert [e["message"] for e in result.evidence] == ["first problem", "second problem"]
    assert result.evidence[0] == _finding("first problem").to_dict()


def test_a_verdict_raising_conformance_failure_fails_like_yielded_findings(client: httpx.Client) -> None:
    def verdict(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
        raise ConformanceFailure([_finding("raised")])

    result = run_check(client, TARGET, _check(verdict=verdict))
    assert (result.status, result.message, result.evidence[0]["pointer"]) == (Status.FAIL, "raised", "/got")


def test_the_plan_receives_each_exchange_to_build_the_next_request(client: httpx.Client) -> None:
    seen: list[Any] = []

    def plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
        first = yield RequestSpec("POST", "/v1/echo", body={"step": 1})
        assert first.response is not None
        yield RequestSpec("POST", "/v1/echo", body={"previous": first.response.body["id"]})

    def verdict(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
        seen.extend(e.response.body["got"] for e in exchanges if e.response)
        return ()

    assert run_check(client, TARGET, _check(plan=plan, verdict=verdict)).status == Status.PASS
    assert seen == [{"step": 1}, {"previous": "resp_1"}]


def test_the_runner_waits_before_a_request_that_asks_for_it(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll's `wait` is slept by the runner, before sending: the plan itself never touches the clock."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)

    def plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
        yield RequestSpec("GET", "/v1/models")
        yield RequestSpec("GET", "/v1/models", wait=1.5)

    result = run_check(client, TARGET, _check(plan=plan))
    assert result.status == Status.PASS
    assert slept == [1.5]


def test_stream_events_reach_the_verdict(client: httpx.Client) -> None:
    def verdict(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
        events = exchanges[0].response.events if exchanges[0].response else None
        if [e.data for e in events or ()] != ['{"n": 1}', '{"n": 2}', "[DONE]"]:
            yield _finding(f"events: {events}")

    result = run_check(client, TARGET, _check(plan=send_all(RequestSpec("POST", "/v1/stream")), verdict=verdict))
    assert result.status == Status.PASS, result.message


def test_an_exception_in_the_verdict_is_an_error_not_a_crash(client: httpx.Client) -> None:
    def verdict(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
        raise KeyError("choices")

    result = run_check(client, TARGET, _check(verdict=verdict))
    assert result.status == Status.ERROR
    assert result.message == "verdict raised KeyError: 'choices'"
    assert "KeyError" in result.evidence[0]["traceback"]


def test_an_exception_in_the_plan_is_an_error(client: httpx.Client) -> None:
    def plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
        yield RequestSpec("GET", "/v1/models")
        raise ValueError("bad plan")

    result = run_check(client, TARGET, _check(plan=plan))
    assert (result.status, result.message) == (Status.ERROR, "plan raised ValueError: bad plan")


def test_a_transport_error_is_an_error_naming_the_request(client: httpx.Client) -> None:
    verdict_called = False

    def verdict(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
        nonlocal verdict_called
        verdict_called = True
        return ()

    result = run_check(client, TARGET, _check(plan=send_all(RequestSpec("POST", "/v1/drop")), verdict=verdict))
    assert result.status == Status.ERROR
    assert result.message.startswith("no response to POST /v1/drop: RemoteProtocolError: Server disconnected")
    assert not verdict_called


def test_an_undecodable_body_is_an_error_naming_the_request(client: httpx.Client) -> None:
    result = run_check(client, TARGET, _check(plan=send_all(RequestSpec("GET", "/v1/gzip"))))
    assert result.status == Status.ERROR
    assert result.message.startswith("no response to GET /v1/gzip: DecodingError:")


def test_durations_record_time_waiting_on_the_server(client: httpx.Client) -> None:
    plan = send_all(RequestSpec("GET", "/v1/slow"), RequestSpec("GET", "/v1/slow"))
    result = run_check(client, TARGET, _check(plan=plan))
    assert result.server_s >= 0.04
    assert result.duration_s >= result.server_s


def test_shape_comes_from_the_check_when_it_has_one(client: httpx.Client) -> None:
    result = run_check(client, TARGET, _check(shape=lambda exchanges: {"count": len(exchanges)}))
    assert result.shape == {"count": 1}


def test_shape_defaults_to_conformance_shape(client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("conformance.shape")
    module.shape = lambda exchanges: ["default", exchanges[0].response.status]  # type: ignore[attr-defined]  # fake module
    monkeypatch.setitem(sys.modules, "conformance.shape", module)
    assert run_check(client, TARGET, _check()).shape == ["default", 200]


def test_a_failing_shape_is_recorded_without_changing_the_status(client: httpx.Client) -> None:
    def shape(exchanges: Sequence[Exchange]) -> Any:
        raise TypeError("unhashable")

    result = run_check(client, TARGET, _check(shape=shape))
    assert (result.status, result.shape) == (Status.PASS, {"shape_error": "TypeError: unhashable"})


def test_an_item_with_a_skip_reason_is_skipped_without_sending(client: httpx.Client) -> None:
    def plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
        raise AssertionError("must not run")
        yield  # pragma: no cover

    result = run_item(client, TARGET, _item(_check(plan=plan), skip_reason="CLI feature"))
    assert (result.status, result.reason) == (Status.SKIP, "CLI feature")
    assert [(c.status, c.message) for c in result.checks] == [(Status.SKIP, "CLI feature")]


def test_a_model_specific_item_skips_other_models(client: httpx.Client) -> None:
    item = _item(_check(), kind=Kind.MODEL_SPECIFIC, model_families=("qwen3", "gpt-oss"))
    result = run_item(client, TARGET, item)
    assert (result.status, result.reason) == (Status.SKIP, "model-specific: runs only for qwen3, gpt-oss models")
    matching = Target(base_url=TARGET.base_url, model="Qwen3-4B-GGUF")
    assert item_skip_reason(item, matching.model) is None
    assert run_item(client, matching, item).status == Status.PASS


def test_an_item_without_checks_is_not_covered(client: httpx.Client) -> None:
    result = run_item(client, TARGET, _item())
    assert (result.status, result.checks) == (Status.NOT_COVERED, ())


def test_an_item_fails_when_one_of_its_checks_fails(client: httpx.Client) -> None:
    failing = _check("bad", verdict=lambda exchanges: [_finding("nope")])
    result = run_item(client, TARGET, _item(_check("good"), failing))
    assert result.status == Status.FAIL
    assert [c.status for c in result.checks] == [Status.PASS, Status.FAIL]


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, items: Sequence[Item]) -> None:
        self.events.append(("started", str(len(items))))

    def check_started(self, item: Item, check: Check) -> None:
        self.events.append(("check_started", f"{item.id}::{check.id}"))

    def check_done(self, item: Item, result: CheckResult) -> None:
        self.events.append(("check_done", f"{item.id}::{result.id}={result.status}"))

    def item_done(self, result: ItemResult) -> None:
        self.events.append(("item_done", f"{result.id}={result.status}"))


def test_run_catalog_reports_every_item_in_order_with_timings(client: httpx.Client) -> None:
    uncovered = Item(id="0.0.2/none", version="0.0.2", title="None", kind=Kind.API)
    slow = _item(_check("slow", plan=send_all(RequestSpec("GET", "/v1/slow"))))
    recorder = _Recorder()
    report = run_catalog(TARGET, [slow, uncovered], client=client, progress=recorder)
    assert [(i.id, i.status) for i in report.items] == [(ITEM, Status.PASS), ("0.0.2/none", Status.NOT_COVERED)]
    assert report.summary == {"passed": 1, "failed": 0, "skipped": 0, "errors": 0, "not_covered": 1}
    assert report.target.to_dict() == {"base_url": "http://fake.test", "model": "tiny-model", "server": "fake/1.0"}
    assert report.meta["server_s"] >= 0.02
    assert report.meta["wall_s"] >= report.meta["server_s"]
    assert report.meta["checks_run"] == 1
    assert recorder.events == [
        ("started", "2"),
        ("check_started", f"{ITEM}::slow"),
        ("check_done", f"{ITEM}::slow=pass"),
        ("item_done", f"{ITEM}=pass"),
        ("item_done", "0.0.2/none=not_covered"),
    ]


OTHER = "0.0.9/other"


def _other_item(*checks: Check) -> Item:
    return Item(id=OTHER, version="0.0.9", title="Other", kind=Kind.API, checks=checks)


def test_a_finding_counts_for_its_own_item_not_the_check_that_saw_it(client: httpx.Client) -> None:
    """A rule of 0.0.9 firing in a 0.0.1 exchange fails 0.0.9, not 0.0.1."""
    foreign = Finding(item=OTHER, check="rule-x", message="wrong usage", endpoint="/v1/models")
    seer = _check("sees", verdict=lambda exchanges: [foreign])
    other = Check(
        id="own", item=OTHER, title="o", plan=send_all(RequestSpec("GET", "/v1/models")), verdict=_no_findings
    )
    report = run_catalog(TARGET, [_item(seer), _other_item(other)], client=client)
    mine, theirs = report.items
    assert (mine.status, [c.status for c in mine.checks]) == (Status.PASS, [Status.PASS])
    assert theirs.status == Status.FAIL
    assert [(c.id, c.status) for c in theirs.checks] == [("own", Status.PASS), (f"seen-in {ITEM}::sees", Status.FAIL)]
    assert theirs.checks[1].message == f"seen in {ITEM}::sees: wrong usage"
    assert theirs.checks[1].evidence[0]["item"] == OTHER


def test_findings_for_items_outside_the_run_do_not_fail_the_check_that_saw_them(client: httpx.Client) -> None:
    seer = _check("sees", verdict=lambda exchanges: [Finding(item=OTHER, check="r", message="m")])
    report = run_catalog(TARGET, [_item(seer)], client=client)
    assert report.items[0].status == Status.PASS
    assert report.meta["findings_outside_run"] == 1


def test_a_check_whose_feature_was_not_exercised_skips(client: httpx.Client) -> None:
    check = replace(_check(), exercised=lambda exchanges: "no tool call was returned; see 0.3.15/tool-choice")
    result = run_item(client, TARGET, _item(check))
    assert result.status == Status.SKIP
    assert result.checks[0].message == "not exercised: no tool call was returned; see 0.3.15/tool-choice"
    assert result.reason == result.checks[0].message


def test_own_errors_fail_even_an_unexercised_check(client: httpx.Client) -> None:
    check = replace(_check(verdict=lambda exchanges: [_finding("bad")]), exercised=lambda exchanges: "nothing")
    assert run_item(client, TARGET, _item(check)).status == Status.FAIL


def test_warnings_never_fail_an_item(client: httpx.Client) -> None:
    warning = replace(_finding("answers differ"), severity=WARNING)
    result = run_item(client, TARGET, _item(_check(verdict=lambda exchanges: [warning])))
    assert result.status == Status.PASS
    assert result.checks[0].message == "warning: answers differ"
    assert [e["severity"] for e in result.checks[0].evidence] == ["warning"]


def _lmstudio_item() -> Item:
    check = _check(plan=send_all(RequestSpec("GET", "/api/v0/missing")))
    return replace(_item(check), extension=LMSTUDIO)


def test_an_extension_the_server_lacks_is_skipped_with_the_evidence(client: httpx.Client) -> None:
    result = run_item(client, TARGET, _lmstudio_item())
    assert result.status == Status.SKIP
    assert result.checks[0].message == (
        "not implemented by this server: GET /api/v0/missing answered 404 (pass --expect lmstudio to count this "
        "as a failure)"
    )
    assert result.checks[0].evidence[0]["status"] == 404
    assert result.reason == result.checks[0].message


def test_an_expected_extension_that_is_missing_fails(client: httpx.Client) -> None:
    failing = _check(plan=send_all(RequestSpec("GET", "/api/v0/missing")), verdict=lambda e: [_finding("404")])
    item = replace(_item(failing), extension=LMSTUDIO)
    assert run_item(client, replace(TARGET, expect=frozenset({LMSTUDIO})), item).status == Status.FAIL
    assert run_item(client, replace(TARGET, server="LM Studio 0.3.30"), item).status == Status.FAIL
    # LM Studio sends no Server header; its /v1/models say owned_by "organization_owner"
    assert run_item(client, replace(TARGET, server="organization_owner"), item).status == Status.FAIL
    assert run_item(client, TARGET, item).status == Status.SKIP


def test_lm_studio_unexpected_endpoint_answer_counts_as_missing() -> None:
    from conformance.applicability import unimplemented
    from conformance.exchange import Request, Response

    request = Request("POST", "http://x/v1/messages", "/v1/messages", body={})
    body = {"error": "Unexpected endpoint or method. (POST /v1/messages)"}
    exchange = Exchange(request, Response(200, {"content-type": "application/json"}, body=body))
    item = Item(id="0.4.1/anthropic-messages", version="0.4.1", title="", kind=Kind.API, extension="anthropic")
    sign = unimplemented(item, [exchange])
    assert sign is not None
    assert sign[0] == 'POST /v1/messages answered 200 "Unexpected endpoint or method"'
    assert unimplemented(replace(item, extension=None), [exchange]) is None
