"""The fundamentals every OpenAI-compatible server needs, before any changelog item: `base/*`."""

from __future__ import annotations

from conformance.catalog import exercised as ex
from conformance.catalog import requests as rq
from conformance.catalog.expect import (
    error_status,
    finish,
    has_content,
    lists_models,
    make_check,
    same_answer,
    sdk_parses,
    succeeded,
)
from conformance.check import Item, Kind, RequestSpec
from conformance.findings import WARNING
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
            exercised=ex.cut(0),
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
            "The same seeded temperature-0 request twice gives the same answer (a warning: OpenAI calls seed "
            "determinism best effort)",
            [rq.chat("Name a colour."), rq.chat("Name a colour.")],
            succeeded(),
            same_answer(0, 1, severity=WARNING),
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
            exercised=ex.cut(0),
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
            [rq.raw_post(rq.CHAT, b'{"model": "x", "max_tokens": 8, "messages": [')],
            error_status(0, 400),
        ),
        make_check(
            ids.BASE_ERRORS,
            "missing-messages",
            "A chat request without `messages` gets 400 with an OpenAI error object",
            [lambda t: RequestSpec("POST", rq.CHAT, body={"model": t.model, "max_tokens": 8})],
            error_status(0, 400),
        ),
        make_check(
            ids.BASE_ERRORS,
            "messages-wrong-type",
            "`messages` given as a string gets 400 with an OpenAI error object (not a 422 `detail` list)",
            [lambda t: RequestSpec("POST", rq.CHAT, body={"model": t.model, "messages": "hello", "max_tokens": 8})],
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

_CAPITAL_PROMPT = "What is the capital of France? Answer as JSON with the keys city and country."
_STRUCTURED_TOKENS = 48
_STRICT = rq.json_schema_format(strict=True)

STRUCTURED_OUTPUT = Item(
    id=ids.STRUCTURED_OUTPUT,
    version="base",
    title="Structured output: response_format json_object and json_schema, streamed too, and openai-python's parse()",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.STRUCTURED_OUTPUT,
            "json-object",
            'response_format {"type": "json_object"} gets content that is a JSON object',
            [rq.chat(_CAPITAL_PROMPT, response_format={"type": "json_object"}, max_tokens=_STRUCTURED_TOKENS)],
            succeeded(),
            exercised=ex.all_of(ex.answered(), ex.complete(0)),
        ),
        make_check(
            ids.STRUCTURED_OUTPUT,
            "json-schema-strict",
            "response_format json_schema with strict: true gets content valid against the schema",
            [rq.chat(_CAPITAL_PROMPT, response_format=_STRICT, max_tokens=_STRUCTURED_TOKENS)],
            succeeded(),
            exercised=ex.all_of(ex.answered(), ex.complete(0)),
        ),
        make_check(
            ids.STRUCTURED_OUTPUT,
            "json-schema-not-strict",
            "response_format json_schema with strict: false gets content valid against the schema",
            [
                rq.chat(
                    _CAPITAL_PROMPT, response_format=rq.json_schema_format(strict=False), max_tokens=_STRUCTURED_TOKENS
                )
            ],
            succeeded(),
            exercised=ex.all_of(ex.answered(), ex.complete(0)),
        ),
        make_check(
            ids.STRUCTURED_OUTPUT,
            "json-schema-streamed",
            "The strict json_schema request streamed: the concatenated content is valid against the schema",
            [rq.chat(_CAPITAL_PROMPT, response_format=_STRICT, stream=True, max_tokens=_STRUCTURED_TOKENS)],
            succeeded(),
            exercised=ex.all_of(ex.answered(), ex.complete(0)),
        ),
        make_check(
            ids.STRUCTURED_OUTPUT,
            "sdk-parse",
            "openai-python's chat.completions.parse() with a pydantic model reads the answer into that model "
            "(llama-cpp-python answers json_schema with a 500)",
            [rq.chat(_CAPITAL_PROMPT, response_format=_STRICT, max_tokens=_STRUCTURED_TOKENS)],
            sdk_parses(0),
            exercised=ex.complete(0),
        ),
    ),
)

BASE_ITEMS: tuple[Item, ...] = (CHAT_COMPLETIONS, CHAT_STREAMING, COMPLETIONS, MODELS, ERRORS, STRUCTURED_OUTPUT)
