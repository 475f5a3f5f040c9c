"""Tests for the rules on options a server must accept (response_format text, ttl, tools)."""

from __future__ import annotations

from typing import Any

from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange


def error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def test_lmstudio_307_response_format_text_refused(wire: Any) -> None:
    request = wire.chat_request(response_format={"type": "text"})
    findings = validate_exchange(wire.plain(request, error("'response_format.type' must be 'json_schema'"), status=400))
    [finding] = [f for f in findings if f.item == ids.RESPONSE_FORMAT_TEXT]
    assert finding.check == "response-format-text-accepted"
    assert "json_schema" in finding.seen
    assert "#307" in finding.message


def test_response_format_text_refused_for_another_reason_is_not_blamed(wire: Any) -> None:
    request = wire.chat_request(response_format={"type": "text"})
    assert validate_exchange(wire.plain(request, error("model not found"), status=404)) == []


def test_ttl_refused(wire: Any) -> None:
    request = wire.chat_request(ttl=300)
    [finding] = validate_exchange(wire.plain(request, error("Unrecognized key: ttl"), status=400))
    assert finding.item == ids.TTL
    assert finding.expected == "2xx"


def test_ttl_accepted_passes(wire: Any) -> None:
    assert validate_exchange(wire.plain(wire.chat_request(ttl=300), wire.completion())) == []


def test_server_error_on_a_tools_request(wire: Any) -> None:
    request = wire.chat_request(tools=[wire.weather_tool(parameters={"type": "object"})])
    body = error("Cannot read properties of undefined (reading 'properties')")
    [finding] = validate_exchange(wire.plain(request, body, status=500))
    assert finding.item == ids.TOOLS_REQUEST_ROBUSTNESS
    assert "reading 'properties'" in finding.seen
