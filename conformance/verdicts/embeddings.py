"""Rules on embeddings: one vector per input, in order, of one dimension, in the encoding asked for."""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Iterator
from typing import Any

from conformance.verdicts import items
from conformance.verdicts.context import Context, Endpoint, Issue
from conformance.verdicts.rule import Rule, rule

__all__ = ["RULES", "decode_vector", "input_count"]

_EMBEDDINGS = frozenset({Endpoint.EMBEDDINGS})


def input_count(value: Any) -> int | None:
    """How many embeddings an `input` asks for: 1 for a string or token list, n for a list of them."""
    if isinstance(value, str):
        return 1
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return 1
        return len(value)
    return None


def decode_vector(embedding: Any) -> list[float] | None:
    """The numbers of an embedding: a list as is, a base64 string as little-endian float32; None if neither."""
    if isinstance(embedding, list):
        return [float(v) for v in embedding] if all(_is_number(v) for v in embedding) else None
    if isinstance(embedding, str):
        try:
            raw = base64.b64decode(embedding, validate=True)
        except (binascii.Error, ValueError):
            return None
        if not raw or len(raw) % 4:
            return None
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return None


@rule("embedding-count", items.EMBEDDINGS, _EMBEDDINGS)
def embedding_count(ctx: Context) -> Iterator[Issue]:
    """One embedding per input, with `index` 0..n-1 in order."""
    if not ctx.ok or not isinstance(ctx.body, dict) or not isinstance(ctx.body.get("data"), list):
        return
    data = ctx.body["data"]
    wanted = input_count(ctx.request.get("input"))
    if wanted is not None and len(data) != wanted:
        yield Issue(
            f"{len(data)} embedding(s) for {wanted} input(s); clients pair vectors with inputs by position",
            pointer="/data",
            expected=wanted,
            seen=len(data),
        )
    indexes = [d.get("index") if isinstance(d, dict) else None for d in data]
    if indexes != list(range(len(data))):
        yield Issue(
            "embedding indexes are not 0..n-1 in order; clients match vectors to inputs by `index`",
            pointer="/data",
            expected=list(range(len(data))),
            seen=indexes,
        )


@rule("embedding-vectors", items.EMBEDDINGS, _EMBEDDINGS)
def embedding_vectors(ctx: Context) -> Iterator[Issue]:
    """Vectors are non-empty, finite, not all zero, of one dimension, and encoded as the request asked."""
    if not ctx.ok or not isinstance(ctx.body, dict) or not isinstance(ctx.body.get("data"), list):
        return
    wants_base64 = ctx.request.get("encoding_format") == "base64"
    dimension: int | None = None
    for k, entry in enumerate(ctx.body["data"]):
        if not isinstance(entry, dict) or "embedding" not in entry:
            continue
        pointer = f"/data/{k}/embedding"
        embedding = entry["embedding"]
        if isinstance(embedding, str) and not wants_base64:
            yield Issue(
                "embedding sent as a base64 string although the request did not ask for encoding_format base64; "
                "clients expect a list of floats",
                pointer=pointer,
                expected="a list of numbers",
                seen=embedding[:80],
            )
            continue
        vector = decode_vector(embedding)
        if vector is None:
            yield Issue(
                "embedding is neither a list of numbers nor base64 of little-endian float32"
                + (" (openai-python decodes base64 with array('f', b64decode(...)))" if wants_base64 else ""),
                pointer=pointer,
                expected="float32 base64" if wants_base64 else "a list of numbers",
                seen=str(embedding)[:80],
            )
            continue
        if not all(math.isfinite(v) for v in vector):
            yield Issue("embedding holds NaN or infinite values", pointer=pointer, expected="finite numbers")
        elif vector and not any(vector):
            yield Issue("embedding is all zeros; similarity with it is undefined", pointer=pointer)
        if dimension is None:
            dimension = len(vector)
        elif len(vector) != dimension:
            yield Issue(
                f"embedding {k} has {len(vector)} dimensions, embedding 0 has {dimension}",
                pointer=pointer,
                expected=dimension,
                seen=len(vector),
            )


@rule("embedding-usage", items.EMBEDDINGS, _EMBEDDINGS)
def embedding_usage(ctx: Context) -> Iterator[Issue]:
    """usage.prompt_tokens > 0 and total_tokens >= prompt_tokens."""
    if not ctx.ok or not isinstance(ctx.body, dict) or not isinstance(ctx.body.get("usage"), dict):
        return
    usage = ctx.body["usage"]
    prompt, total = usage.get("prompt_tokens"), usage.get("total_tokens")
    if not (isinstance(prompt, int) and isinstance(total, int)):
        return
    if prompt <= 0:
        yield Issue(
            "usage.prompt_tokens is 0 for a non-empty input",
            pointer="/usage/prompt_tokens",
            expected="> 0",
            seen=prompt,
        )
    if total < prompt:
        yield Issue(
            "usage.total_tokens is smaller than prompt_tokens",
            pointer="/usage/total_tokens",
            expected=f">= {prompt}",
            seen=total,
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


RULES: tuple[Rule, ...] = (embedding_count, embedding_vectors, embedding_usage)
