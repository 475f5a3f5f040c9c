"""Conformance checks for OpenAI- and Anthropic-compatible LLM servers, item by item of LM Studio's changelog."""

from __future__ import annotations

from conformance.check import Check, Item, Kind, RequestSpec, Status, Target
from conformance.exchange import Exchange, Request, Response, SSEEvent
from conformance.findings import ConformanceFailure, Finding

__all__ = [
    "Check",
    "ConformanceFailure",
    "Exchange",
    "Finding",
    "Item",
    "Kind",
    "Request",
    "RequestSpec",
    "Response",
    "SSEEvent",
    "Status",
    "Target",
]
