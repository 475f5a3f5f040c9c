"""Tests for proxy/har.py: HAR 1.2 entries with SSE bodies as text and timings."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.exchange import Exchange, Request, Response, SSEEvent
from proxy.har import HarRecord, HarTimings, har_document, write_har


def test_entries(tmp_path: Path) -> None:
    stream = Exchange(
        Request(
            "POST",
            "http://h/v1/chat/completions?x=1",
            "/v1/chat/completions?x=1",
            {"content-type": "application/json"},
            {"a": 1},
        ),
        Response(
            200, {"content-type": "text/event-stream"}, events=(SSEEvent(1, None, "1", "data: 1"),), tail="data: 2"
        ),
        started_at="2025-01-01T00:00:00+00:00",
    )
    failed = Exchange(Request("GET", "http://h/v1/models", "/v1/models"), None, error="refused")
    records = [HarRecord(stream, HarTimings(1.0, 2.0, 3.0)), HarRecord(failed, HarTimings(0.5, 0, 0))]
    doc = har_document(records)
    first, second = doc["log"]["entries"]
    assert doc["log"]["version"] == "1.2"
    assert first["time"] == 6.0
    assert first["timings"]["wait"] == 2.0
    assert first["request"]["queryString"] == [{"name": "x", "value": "1"}]
    assert json.loads(first["request"]["postData"]["text"]) == {"a": 1}
    assert first["response"]["content"]["text"] == "data: 1\n\ndata: 2"
    assert first["response"]["statusText"] == "OK"
    assert second["response"]["status"] == 0
    assert second["_error"] == "refused"
    write_har(tmp_path / "x.har", records)
    assert json.loads((tmp_path / "x.har").read_text()) == doc
