"""The catalog: every item of LM Studio's API changelog (plus `base/*` fundamentals), with its checks."""

from __future__ import annotations

from conformance.catalog.anthropic import ANTHROPIC_ITEMS
from conformance.catalog.auth import AUTH_ITEMS
from conformance.catalog.base import BASE_ITEMS
from conformance.catalog.extras import EXTRA_ITEMS
from conformance.catalog.lifecycle import LIFECYCLE_ITEMS
from conformance.catalog.lmstudio_v1 import LMSTUDIO_V1_ITEMS
from conformance.catalog.responses import RESPONSES_ITEMS
from conformance.catalog.tools import TOOL_ITEMS
from conformance.catalog.uncovered import CLI_SKIP_REASON, UNCOVERED_ITEMS
from conformance.catalog.usage import USAGE_ITEMS
from conformance.check import Item

__all__ = ["CLI_SKIP_REASON", "ITEMS", "by_id"]

_ORDER = (
    "0.3.5/lms-get",
    "0.3.6/tool-calling",
    "0.3.9/ttl",
    "0.3.9/reasoning-content",
    "0.3.10/speculative-decoding",
    "0.3.14/presets",
    "0.3.15/tool-choice",
    "0.3.15/finish-reason-tool-calls",
    "0.3.16/model-capabilities",
    "0.3.16/no-empty-function-name",
    "0.3.17/usage-includes-system-and-tools",
    "0.3.17/streamed-tool-arguments",
    "0.3.17/tools-without-parameters",
    "0.3.18/stream-include-usage",
    "0.3.18/stream-errors",
    "0.3.18/mistral-v13-tool-calling",
    "0.3.18/response-format-text",
    "0.3.18/parallel-tool-calls-chunked",
    "0.3.18/tool-schema-defs",
    "0.3.19/stream-usage-correct",
    "0.3.19/parallel-tool-calls-stream",
    "0.3.19/mistral-tool-parsing",
    "0.3.23/reasoning-field",
    "0.3.23/tool-name-normalization",
    "0.3.23/tools-request-robustness",
    "0.3.24/seed-oss-tool-calling",
    "0.3.25/nemotron-tool-calling",
    "0.3.25/embeddings",
    "0.3.26/lms-log-stream",
    "0.3.27/lms-load-estimate-only",
    "0.3.27/lms-chat-interrupt",
    "0.3.27/lms-ps-json",
    "0.3.29/responses",
    "0.3.29/responses-stateful",
    "0.3.29/responses-streaming",
    "0.3.29/responses-function-tools",
    "0.3.29/responses-remote-mcp",
    "0.3.29/responses-reasoning-effort",
    "0.3.29/lms-ls-variants",
    "0.4.0/rest-v1-chat",
    "0.4.0/rest-v1-models",
    "0.4.0/rest-v1-mcp",
    "0.4.0/auth-tokens",
    "0.4.1/anthropic-messages",
)
"""Changelog order, oldest first, each release's items in the order its entry lists them."""

_VERSIONED = {
    **TOOL_ITEMS,
    **USAGE_ITEMS,
    **EXTRA_ITEMS,
    **ANTHROPIC_ITEMS,
    **RESPONSES_ITEMS,
    **LMSTUDIO_V1_ITEMS,
    **UNCOVERED_ITEMS,
    **LIFECYCLE_ITEMS,
    **AUTH_ITEMS,
}

ITEMS: tuple[Item, ...] = (*BASE_ITEMS, *(_VERSIONED[i] for i in _ORDER))
"""The whole catalog: the `base/*` fundamentals, then every changelog item from oldest to newest."""

_BY_ID = {item.id: item for item in ITEMS}
if len(_BY_ID) != len(ITEMS) or set(_VERSIONED) != set(_ORDER):
    raise RuntimeError("catalog: an item id is duplicated or missing from the changelog order")


def by_id(item_id: str) -> Item:
    """The item with this id; KeyError names the known ids when there is none."""
    try:
        return _BY_ID[item_id]
    except KeyError:
        raise KeyError(f"no catalog item {item_id!r}; known items: {', '.join(_BY_ID)}") from None
