"""Items on request extras and other endpoints: reasoning, draft models, presets, formats, embeddings."""

from __future__ import annotations

from conformance.catalog import exercised as ex
from conformance.catalog import requests as rq
from conformance.catalog.expect import has_content, make_check, same_vectors, succeeded
from conformance.catalog.presets import PRESETS
from conformance.check import LMSTUDIO, Item, Kind
from conformance.verdicts import items as ids

__all__ = ["EXTRA_ITEMS"]

_REASONING_PROMPT = "Think step by step: what is 2 + 3?"

_REASONING_CONTENT = Item(
    id=ids.REASONING_CONTENT,
    version="0.3.9",
    title="Separate `reasoning_content` in chat completion responses (DeepSeek R1)",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.REASONING_CONTENT,
            "no-think-markup",
            "No <think> markup in content; reasoning_content, if any, a string in message/delta "
            "(fully exercised only by reasoning models)",
            [rq.chat(_REASONING_PROMPT, max_tokens=24), rq.chat(_REASONING_PROMPT, max_tokens=24, stream=True)],
            succeeded(),
            exercised=ex.reasoned(),
        ),
    ),
)

_SPECULATIVE = Item(
    id=ids.SPECULATIVE_DECODING,
    version="0.3.10",
    title="Speculative decoding with `draft_model`; responses include a `stats` object",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    extension=LMSTUDIO,
    checks=(
        make_check(
            ids.SPECULATIVE_DECODING,
            "draft-model-stats",
            "draft_model set to the target's own model: the answer has `stats` with the six draft fields",
            [lambda t: rq.chat("Say hello.", draft_model=t.model)(t)],
            succeeded(),
        ),
    ),
)

_PRESETS = PRESETS

_RESPONSE_FORMAT_TEXT = Item(
    id=ids.RESPONSE_FORMAT_TEXT,
    version="0.3.18",
    title='response_format {"type": "text"} is accepted',
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.RESPONSE_FORMAT_TEXT,
            "text-accepted",
            'response_format {"type": "text"} gets a normal answer, not 400 (lmstudio #307, #189)',
            [rq.chat("Say hello.", response_format={"type": "text"})],
            succeeded(),
            has_content(),
        ),
        make_check(
            ids.RESPONSE_FORMAT_TEXT,
            "text-accepted-streamed",
            'response_format {"type": "text"} with stream: true gets a normal stream',
            [rq.chat("Say hello.", response_format={"type": "text"}, stream=True)],
            succeeded(),
            has_content(),
        ),
    ),
)

_REASONING_FIELD = Item(
    id=ids.REASONING_FIELD,
    version="0.3.23",
    title="gpt-oss reasoning in `message.reasoning` / `delta.reasoning`, not in content",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.REASONING_FIELD,
            "no-harmony-markup",
            "No harmony <|channel|> markup in content; `reasoning`, if any, a string in message/delta "
            "(fully exercised only by reasoning models)",
            [rq.chat(_REASONING_PROMPT, max_tokens=24), rq.chat(_REASONING_PROMPT, max_tokens=24, stream=True)],
            succeeded(),
            exercised=ex.reasoned(),
        ),
    ),
)

_EMBEDDINGS = Item(
    id=ids.EMBEDDINGS,
    version="0.3.25",
    title="POST /v1/embeddings (EmbeddingGemma support); checked with the target's model",
    kind=Kind.API,
    endpoints=(rq.EMBEDDINGS,),
    checks=(
        make_check(
            ids.EMBEDDINGS,
            "single-input",
            "One string gets one finite, non-zero float vector with index 0 and usage",
            [rq.embeddings("The quick brown fox jumps over the lazy dog.")],
            succeeded(),
        ),
        make_check(
            ids.EMBEDDINGS,
            "batch-input",
            "Three strings get three vectors of one dimension, indexes 0..2 in order",
            [rq.embeddings(["The sky is blue.", "Grass is green.", "Snow is white."])],
            succeeded(),
        ),
        make_check(
            ids.EMBEDDINGS,
            "base64-matches-float",
            "encoding_format base64 (openai-python's default) decodes to the vectors of encoding_format float",
            [
                rq.embeddings(["The sky is blue.", "Grass is green."], encoding_format="float"),
                rq.embeddings(["The sky is blue.", "Grass is green."], encoding_format="base64"),
            ],
            succeeded(),
            same_vectors(0, 1),
        ),
    ),
    extension="embeddings",  # a chat-only server (llama-server without --embeddings) answers 501
)

EXTRA_ITEMS: dict[str, Item] = {
    i.id: i
    for i in (
        _REASONING_CONTENT,
        _SPECULATIVE,
        _PRESETS,
        _RESPONSE_FORMAT_TEXT,
        _REASONING_FIELD,
        _EMBEDDINGS,
    )
}
