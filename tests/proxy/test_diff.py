"""Tests for proxy/diff.py: structure compared, volatile values and generated text ignored."""

from __future__ import annotations

import json
import re

import pytest

from conformance.exchange import Exchange, Request, Response, SSEEvent
from proxy.diff import Change, diff_exchanges, glob_regex


def _chunk(n: int, delta: dict[str, object], finish: str | None = None, **extra: object) -> SSEEvent:
    payload = {"id": f"chatcmpl-{n}", "created": 1700000000 + n, "system_fingerprint": f"fp{n}", **extra}
    payload["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    data = json.dumps(payload)
    return SSEEvent(t_ms=float(n), event=None, data=data, raw=f"data: {data}")


def _stream(texts: list[str], finish: str = "stop", usage: int = 5, seed: int = 0, done: bool = True) -> Exchange:
    events = [_chunk(seed, {"role": "assistant"})]
    events += [_chunk(seed + i + 1, {"content": t}) for i, t in enumerate(texts)]
    events.append(_chunk(seed + 50, {}, finish, usage={"prompt_tokens": 3, "completion_tokens": usage}))
    if done:
        events.append(SSEEvent(99.0, None, "[DONE]", "data: [DONE]"))
    return Exchange(
        Request("POST", "http://h/v1/chat/completions", "/v1/chat/completions", {}, {"model": "m", "stream": True}),
        Response(200, {"content-type": "text/event-stream; charset=utf-8"}, events=tuple(events)),
        id=f"ex{seed}",
        duration_ms=float(seed),
    )


def test_same_structure_with_other_ids_times_and_text_is_no_difference() -> None:
    old = _stream(["Hel", "lo"], seed=0)
    new = _stream(["Good", "bye", " now"], seed=1000)
    assert diff_exchanges([old], [new]) == []


def test_changed_value_is_reported_with_its_path() -> None:
    (difference,) = diff_exchanges([_stream(["a"])], [_stream(["a"], finish="length")])
    assert difference.change is Change.CHANGED
    assert difference.path == "events[2].data.choices[0].finish_reason"
    assert (difference.old, difference.new) == ("stop", "length")
    assert str(difference).startswith("POST /v1/chat/completions #1: events[2].data.choices[0].finish_reason changed")


def test_type_change_of_generated_text_is_reported() -> None:
    new = _stream(["a"])
    assert new.response is not None
    assert new.response.events is not None
    events = list(new.response.events)
    events[1] = _chunk(1, {"content": None})
    new = Exchange(new.request, Response(200, new.response.headers, events=tuple(events)))
    (difference,) = diff_exchanges([_stream(["a"])], [new])
    assert difference.change is Change.TYPE_CHANGED
    assert difference.path == "events[1].data.choices[0].delta.content"


def test_missing_done_event_is_reported() -> None:
    (difference,) = diff_exchanges([_stream(["a"])], [_stream(["a"], done=False)])
    assert difference.change is Change.REMOVED
    assert difference.path == "events[3]"
    assert difference.old["data"] == "[DONE]"


def test_ignore_globs() -> None:
    old, new = _stream(["a"], usage=5), _stream(["a"], usage=7)
    assert [d.path for d in diff_exchanges([old], [new])] == ["events[2].data.usage.completion_tokens"]
    assert diff_exchanges([old], [new], ["usage.*"]) == []
    assert diff_exchanges([old], [new], ["**.completion_tokens"]) == []
    assert diff_exchanges([old], [new], ["*_tokens"]) == []


def test_unpaired_exchanges_are_differences() -> None:
    models = Exchange(Request("GET", "http://h/v1/models", "/v1/models"), Response(200, body={"data": []}))
    differences = diff_exchanges([_stream(["a"]), models], [_stream(["a"])])
    assert [(d.change, d.request) for d in differences] == [(Change.ONLY_IN_OLD, "GET /v1/models #2")]


def test_plain_bodies_and_failures() -> None:
    ok = Exchange(Request("GET", "u", "/v1/models"), Response(200, body={"object": "list", "data": [{"id": "m"}]}))
    other = Exchange(Request("GET", "u", "/v1/models"), Response(200, body={"object": "list", "data": []}))
    failed = Exchange(Request("GET", "u", "/v1/models"), None, error="refused")
    assert [d.path for d in diff_exchanges([ok], [other])] == ["body.data[0]"]
    paths = {d.path for d in diff_exchanges([ok], [failed])}
    assert {"failed", "status", "body"} <= paths


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("usage.*", "root['body']['usage']['total_tokens']", True),
        ("usage.*", "root['body']['usage']", False),
        ("choices[*].logprobs", "root['events'][3]['data']['choices'][0]['logprobs']", True),
        ("model", "root['body']['model']", True),
        ("model", "root['body']['models']", False),
        ("*_tokens", "root['body']['usage']['prompt_tokens']", True),
    ],
)
def test_glob_regex(glob: str, path: str, matches: bool) -> None:
    assert bool(re.search(glob_regex(glob), path)) is matches
