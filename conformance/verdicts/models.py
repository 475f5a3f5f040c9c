"""Rules on model listings (GET /v1/models, LM Studio's GET /api/v0/models) and LM Studio extras on answers."""

from __future__ import annotations

from collections.abc import Iterator

from conformance import schemas
from conformance.schemas import Schema
from conformance.verdicts import items
from conformance.verdicts.context import Context, Endpoint, Issue
from conformance.verdicts.rule import Rule, rule

__all__ = ["RULES"]


@rule("model-ids-unique", items.BASE_MODELS, frozenset({Endpoint.MODELS, Endpoint.LMSTUDIO_MODELS}))
def model_ids_unique(ctx: Context) -> Iterator[Issue]:
    """Each model id appears once in a listing."""
    if not ctx.ok or not isinstance(ctx.body, dict) or not isinstance(ctx.body.get("data"), list):
        return
    seen: set[str] = set()
    for k, model in enumerate(ctx.body["data"]):
        model_id = model.get("id") if isinstance(model, dict) else None
        if isinstance(model_id, str) and model_id in seen:
            yield Issue(
                f"model {model_id!r} is listed twice; clients pick models by id",
                item=ctx.base_item,
                pointer=f"/data/{k}/id",
                expected="unique ids",
                seen=model_id,
            )
        if isinstance(model_id, str):
            seen.add(model_id)


@rule("speculative-stats", items.SPECULATIVE_DECODING, frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS}))
def speculative_stats(ctx: Context) -> Iterator[Issue]:
    """A non-streamed answer to a request with `draft_model` has a `stats` object with the draft-token counts."""
    if not ctx.ok or ctx.stream is not None or not isinstance(ctx.body, dict):
        return
    if not isinstance(ctx.request.get("draft_model"), str):
        return
    stats = ctx.body.get("stats")
    if not isinstance(stats, dict):
        yield Issue(
            "the request named a draft_model but the answer has no `stats` object with the draft-token counts",
            pointer="/stats",
            expected="stats {tokens_per_second, draft_model, total/accepted/rejected/ignored_draft_tokens_count}",
            seen=stats,
        )
        return
    for error in schemas.errors(Schema.LMSTUDIO_STATS, stats):
        yield Issue(
            f"`stats` breaks the speculative-decoding schema: {error.message}",
            pointer="/stats" + error.pointer,
            expected=error.constraint,
        )


RULES: tuple[Rule, ...] = (model_ids_unique, speculative_stats)
