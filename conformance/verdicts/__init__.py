"""Pure verdict rules over recorded exchanges; `validate_exchange` runs every rule for an exchange's endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.verdicts import (
    acceptance,
    anthropic,
    bodies,
    chat,
    embeddings,
    errors,
    framing,
    lmstudio_v1,
    models,
    presets,
    responses,
    sdk,
    structured,
    tools,
    usage,
)
from conformance.verdicts.answer import Answer, ToolCall, answer, answer_of
from conformance.verdicts.context import Context, Endpoint, Issue, endpoint_of
from conformance.verdicts.rule import Rule
from conformance.verdicts.sdk import Replay, replay, replay_of

__all__ = [
    "RULES",
    "Answer",
    "Context",
    "Endpoint",
    "Issue",
    "Replay",
    "Rule",
    "ToolCall",
    "answer",
    "answer_of",
    "endpoint_of",
    "replay",
    "replay_of",
    "validate_context",
    "validate_contexts",
    "validate_exchange",
]

RULES: tuple[Rule, ...] = (
    *errors.RULES,
    *acceptance.RULES,
    *framing.RULES,
    *bodies.RULES,
    *chat.RULES,
    *usage.RULES,
    *tools.RULES,
    *structured.RULES,
    *sdk.RULES,
    *embeddings.RULES,
    *models.RULES,
    *presets.RULES,
    *responses.RULES,
)
"""Every rule, in the order findings are reported: transport and errors, framing, schemas, then meaning."""


def validate_context(ctx: Context) -> list[Finding]:
    """Every applicable rule's findings for one exchange, reusing the context's derived views."""
    if ctx.endpoint is None:
        # /v1/messages* and /api/v1/*: their own rules; [] for other unknown paths
        return anthropic.validate_context(ctx) + lmstudio_v1.validate_context(ctx)
    return [finding for r in RULES for finding in r.findings(ctx)]


def validate_exchange(exchange: Exchange) -> list[Finding]:
    """Every request-conditional rule for the exchange's endpoint; [] for endpoints the rules do not know."""
    return validate_context(Context(exchange))


def validate_contexts(contexts: Sequence[Context]) -> list[Finding]:
    """Every applicable rule's findings on each of a check's exchanges, numbered by exchange when there are
    several."""
    many = len(contexts) > 1
    return [replace(f, exchange=i) if many else f for i, ctx in enumerate(contexts) for f in validate_context(ctx)]
