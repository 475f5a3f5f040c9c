"""The rules of Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`), item `0.4.1/anthropic-messages`.

`validate` judges one exchange; `validate_context` is what `conformance.verdicts.validate_context` calls for
paths the OpenAI rules do not know, so `conformance run`, `conformance check` and the proxy share the rules.
"""

from __future__ import annotations

from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.verdicts.anthropic.rules import RULES, MessagesRule
from conformance.verdicts.anthropic.sdk import SdkReplay, sdk_replay
from conformance.verdicts.anthropic.view import Block, Frame, MessagesView, Surface, surface_of, view, view_of
from conformance.verdicts.context import Context

__all__ = [
    "RULES",
    "Block",
    "Frame",
    "MessagesRule",
    "MessagesView",
    "SdkReplay",
    "Surface",
    "sdk_replay",
    "surface_of",
    "validate",
    "validate_context",
    "view",
    "view_of",
]


def validate_view(found: MessagesView) -> list[Finding]:
    return [finding for rule in RULES for finding in rule.findings(found)]


def validate(exchange: Exchange) -> list[Finding]:
    """Every Anthropic rule's findings on one exchange; [] when it is not an Anthropic endpoint."""
    found = view_of(exchange)
    return [] if found is None else validate_view(found)


def validate_context(ctx: Context) -> list[Finding]:
    """As `validate`, sharing the context's memo (the view, the SDK replay) with the checks' expectations."""
    found = view(ctx)
    return [] if found is None else validate_view(found)
