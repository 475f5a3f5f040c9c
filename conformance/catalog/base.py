"""The fundamentals every OpenAI-compatible server needs, before any changelog item: `base/*`."""

from __future__ import annotations

from conformance.catalog import requests as rq
from conformance.catalog.expect import (
    error_status,
    finish,
    has_content,
    lists_models,
    make_check,
    same_answer,
    succeeded,
)
from conformance.check import Item, Kind, RequestSpec
from conformance.verdicts import items as ids

__all__ = ["BASE_ITEMS"]

_HISTORY = [
    {"role": "system", "content": "You are a friendly assistant. Answer briefly."},
    {"role": "user", "content": "Hi, my name is Ada."},
    {"role": "assistant", "content": "Hello Ada! How can I help you?"},
    {"role": "user", "content": "What is my name?"},
]

CHAT_COMPLETIONS = Item(
    id=ids.BASE_CHAT,
    version="base",
    title="Chat completions: a valid chat.completion body with usage",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.BASE_CHAT,
            "basic-reply",
            "A one-line prompt gets a schema-valid answer with text, finish_reason and usage",
            [rq.chat("Say hello.")],
            succeeded(),
            has_content(),
            finish(0, "stop", "length"),
        ),
        make_check(
            ids.BASE_CHAT,
            "max-tokens-length",
            'max_tokens cuts the answer short with finish_reason "length" and completion_tokens <= max_tokens',
            [rq.chat("Count from 1 to 50, separated by commas.", max_tokens=4)],
            succeeded(),
            finish(0, "length"),
        ),
        make_check(
            ids.BASE_CHAT,
            "conversation-history",
            "A system message and earlier turns (user and assistant) are accepted",
            [rq.chat(messages=_HISTORY)],
            succeeded(),
            has_content(),
        ),
        make_check(
            ids.BASE_CHAT,
            "seeded-repeatable",
            "The same seeded temperature-0 request twice gives the same answer",
            [rq.chat("Name a colour."), rq.chat("Name a colour.")],
            succeeded(),
            same_answer(0, 1),
        ),
    ),
)

CHAT_STREAMING = Item(
    id=ids.BASE_STREAMING,
    version="base",
    title="Chat streaming: SSE framing, chunk schema, [DONE], and a stream openai-python can accumulate",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.BASE_STREAMING,
            "stream-basic",
            "stream: true gets well-framed chunks (role first, one finish_reason, [DONE] last) the SDK can rebuild",
            [rq.chat("Say hello.", stream=True)],
            succeeded(),
            has_content(),
        ),
        make_check(
            ids.BASE_STREAMING,
            "streamed-equals-non-streamed",
            "The streamed answer, rebuilt by openai-python, equals the non-streamed answer to the same seeded request",
            [rq.chat("Name three fruits."), rq.chat("Name three fruits.", stream=True)],
            succeeded(),
            same_answer(0, 1),
        ),
        make_check(
            ids.BASE_STREAMING,
            "stream-length-finish",
            'A stream cut by max_tokens ends with finish_reason "length" on its last choice chunk',
            [rq.chat("Count from 1 to 50, separated by commas.", max_tokens=4, stream=True)],
            succeeded(),
            finish(0, "length"),
        ),
    ),
)

COMPLETIONS = Item(
    id=ids.BASE_COMPLETIONS,
    version="base",
    title="Legacy text completions (POST /v1/completions), plain and streamed",
    kind=Kind.API,
    endpoints=(rq.COMPLETIONS,),
    checks=(
        make_check(
            ids.BASE_COMPLETIONS,
            "basic-completion",
            "A prompt gets a schema-valid text_completion with text, finish_reason and usage",
            [rq.completion()],
            succeeded(),
            has_content(),
        ),
        make_check(
            ids.BASE_COMPLETIONS,
            "stream-completion",
            "stream: true gets well-framed text_completion chunks, one finish_reason, [DONE] last",
            [rq.completion(stream=True)],
            succeeded(),
            has_content(),
        ),
        make_check(
            ids.BASE_COMPLETIONS,
            "streamed-equals-non-streamed",
            "The streamed text equals the non-streamed text of the same seeded request",
            [rq.completion(), rq.completion(stream=True)],
            succeeded(),
            same_answer(0, 1),
        ),
    ),
)

MODELS = Item(
    id=ids.BASE_MODELS,
    version="base",
    title="Model list (GET /v1/models)",
    kind=Kind.API,
    endpoints=(rq.MODELS,),
    checks=(
        make_check(
            ids.BASE_MODELS,
            "list-models",
            "GET /v1/models returns a schema-valid, non-empty list of models with unique ids",
            [rq.get(rq.MODELS)],
            succeeded(),
            lists_models(0),
        ),
    ),
)

ERRORS = Item(
    id=ids.BASE_ERRORS,
    version="base",
    title="Errors: the right status with an OpenAI error object, never FastAPI's 422 `detail`",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.BASE_ERRORS,
            "malformed-json",
            "A body that is not JSON gets 400 with an OpenAI error object",
            [rq.raw_post(rq.CHAT, b'{"model": "x", "messages": [')],
            error_status(0, 400),
        ),
        make_check(
            ids.BASE_ERRORS,
            "missing-messages",
            "A chat request without `messages` gets 400 with an OpenAI error object",
            [lambda t: RequestSpec("POST", rq.CHAT, body={"model": t.model})],
            error_status(0, 400),
        ),
        make_check(
            ids.BASE_ERRORS,
            "messages-wrong-type",
            "`messages` given as a string gets 400 with an OpenAI error object (not a 422 `detail` list)",
            [lambda t: RequestSpec("POST", rq.CHAT, body={"model": t.model, "messages": "hello"})],
            error_status(0, 400),
        ),
        make_check(
            ids.BASE_ERRORS,
            "unknown-model",
            "A model id the server does not have gets 404 (or 400) with an OpenAI error object",
            [rq.chat("Say hello.", model=rq.UNKNOWN_MODEL)],
            error_status(0, 404, 400),
        ),
    ),
)

BASE_ITEMS: tuple[Item, ...] = (CHAT_COMPLETIONS, CHAT_STREAMING, COMPLETIONS, MODELS, ERRORS)
