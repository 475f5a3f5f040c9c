"""Builders of hand-made exchanges and a pure fake OpenAI server with switchable bugs, for verdict tests."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx
import pytest

from conformance.check import Check, RequestSpec, Target
from conformance.client import send
from conformance.exchange import Exchange, Request, Response
from conformance.findings import Finding
from conformance.sse import parse_sse

MODEL = "fake-model-1b"
PRESET = "@local:fake-preset"
PRESET_SYSTEM = "You answer briefly."
"""The preset the fake server has (its system prompt), named by TARGET as `--preset` would."""
TARGET = Target(base_url="http://fake.invalid", model=MODEL, preset=PRESET)
_MISSING: Any = object()


class Wire:
    """Small builders for exchanges: plain bodies, and streams written as real SSE text then parsed."""

    model = MODEL

    @staticmethod
    def request(body: Any = None, *, path: str = "/v1/chat/completions", method: str = "POST") -> Request:
        return Request(method=method, url="http://fake.invalid" + path, path=path, headers={}, body=body)

    @staticmethod
    def chat_request(**extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]}
        body.update(extra)
        return body

    @staticmethod
    def plain(
        request_body: Any,
        body: Any,
        *,
        status: int = 200,
        path: str = "/v1/chat/completions",
        method: str = "POST",
    ) -> Exchange:
        return Exchange(
            Wire.request(request_body, path=path, method=method),
            Response(status, {"content-type": "application/json"}, body=body),
        )

    @staticmethod
    def sse_text(events: Iterable[dict[str, Any] | str], *, done: bool = True, tail: str = "") -> str:
        """`dict` events become `data: <json>` blocks; `str` events are raw blocks, written as given."""
        blocks = [("data: " + json.dumps(e)) if isinstance(e, dict) else e for e in events]
        if done:
            blocks.append("data: [DONE]")
        return "".join(b + "\n\n" for b in blocks) + tail

    @staticmethod
    def stream(
        request_body: Any,
        events: Iterable[dict[str, Any] | str],
        *,
        done: bool = True,
        tail: str = "",
        status: int = 200,
        path: str = "/v1/chat/completions",
    ) -> Exchange:
        parsed, rest = parse_sse(Wire.sse_text(events, done=done, tail=tail).encode())
        response = Response(status, {"content-type": "text/event-stream"}, events=tuple(parsed), tail=rest)
        return Exchange(Wire.request(request_body, path=path), response)

    @staticmethod
    def chunk(
        delta: dict[str, Any] | None = None,
        *,
        finish: str | None = None,
        usage: Any = _MISSING,
        choices: list[dict[str, Any]] | None = None,
        **top: Any,
    ) -> dict[str, Any]:
        """A chat.completion.chunk with one choice (or the given `choices`)."""
        chunk: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL,
            "choices": choices
            if choices is not None
            else [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        }
        if usage is not _MISSING:
            chunk["usage"] = usage
        chunk.update(top)
        return chunk

    @staticmethod
    def tool_delta(
        index: Any = 0,
        *,
        id: str | None = None,
        name: str | None = None,
        arguments: str | None = None,
        type: str | None = None,
    ) -> dict[str, Any]:
        """One `delta.tool_calls` entry; pass index=None to leave `index` out."""
        entry: dict[str, Any] = {}
        if index is not None:
            entry["index"] = index
        if id is not None:
            entry["id"] = id
            entry["type"] = type or "function"
        elif type is not None:
            entry["type"] = type
        function: dict[str, Any] = {}
        if name is not None:
            function["name"] = name
        if arguments is not None:
            function["arguments"] = arguments
        entry["function"] = function
        return entry

    @staticmethod
    def usage(prompt: int = 5, completion: int = 3, total: int | None = None) -> dict[str, int]:
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total or prompt + completion}

    @staticmethod
    def completion(
        content: str | None = "Hello there.",
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        finish: str = "stop",
        usage: Any = _MISSING,
        **message_extra: Any,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content, **message_extra}
        if tool_calls is not None:
            message["tool_calls"] = tool_calls
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": Wire.usage() if usage is _MISSING else usage,
        }

    @staticmethod
    def tool_call(
        name: str = "get_weather", arguments: str = '{"city": "Paris"}', id: str = "call_1"
    ) -> dict[str, Any]:
        return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}

    @staticmethod
    def text_stream(words: Sequence[str] = ("Hello", " there", "."), *, finish: str = "stop") -> list[dict[str, Any]]:
        """Good chunks of a text answer: role first, one chunk per word, the finish chunk."""
        chunks = [Wire.chunk({"role": "assistant", "content": ""})]
        chunks += [Wire.chunk({"content": w}) for w in words]
        chunks.append(Wire.chunk({}, finish=finish))
        return chunks

    @staticmethod
    def tool_stream(
        calls: Sequence[tuple[str, Sequence[str]]] = (("get_weather", ('{"city": ', '"Paris"}')),),
    ) -> list[dict[str, Any]]:
        """Good chunks of tool calls: per call one start delta (id, name) then one delta per argument fragment."""
        chunks = [Wire.chunk({"role": "assistant", "content": None})]
        for index, (name, fragments) in enumerate(calls):
            chunks.append(
                Wire.chunk({"tool_calls": [Wire.tool_delta(index, id=f"call_{index}", name=name, arguments="")]})
            )
            chunks += [Wire.chunk({"tool_calls": [Wire.tool_delta(index, arguments=f)]}) for f in fragments]
        chunks.append(Wire.chunk({}, finish="tool_calls"))
        return chunks

    @staticmethod
    def weather_tool(name: str = "get_weather", parameters: Any = _MISSING) -> dict[str, Any]:
        params = (
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
            if parameters is _MISSING
            else parameters
        )
        function: dict[str, Any] = {"name": name, "description": "weather"}
        if params is not None:
            function["parameters"] = params
        return {"type": "function", "function": function}


# ---------------------------------------------------------------------------------------------------------------
# A pure fake server: answers RequestSpecs like a correct OpenAI-compatible server, unless told to misbehave.
# ---------------------------------------------------------------------------------------------------------------

BUGS = frozenset(
    {
        "schema_body",  # non-streamed body without `created` and with finish_reason "eos"
        "ignore_max_tokens",  # generates past max_tokens and says "stop"
        "reject_history",  # 400 when an assistant message is in the history
        "nondeterministic",  # a different answer each request
        "role_missing",  # the first delta has no role
        "stream_differs",  # the streamed text differs from the non-streamed text
        "stream_finish_stop_on_length",  # streams cut by max_tokens say "stop"
        "no_done",  # streams end without [DONE]
        "models_schema",  # /v1/models entries without `object`
        "fastapi_422",  # validation errors as FastAPI's 422 {"detail": [...]}
        "unknown_model_ok",  # any model id is answered
        "calls_in_content",  # tool calls written as <tool_call> markup in content (lmstudio #821, #2115)
        "no_index",  # tool-call deltas without index (ollama #7881)
        "stream_args_differ",  # streamed arguments differ from non-streamed ones
        "reject_tool_messages",  # 400 on `tool` role messages
        "auto_stream_crash",  # 500 on stream + tools + tool_choice auto (llama-cpp-python #1883)
        "reject_ttl",  # 400 on `ttl`
        "think_leak",  # <think> markup in content
        "harmony_leak",  # gpt-oss harmony markup in content
        "no_stats",  # no `stats` for draft_model
        "ignore_tool_choice_none",  # calls tools although tool_choice is "none"
        "reject_auto",  # 400 on tool_choice "auto"
        "ignore_named_choice",  # calls the first tool whatever tool_choice names
        "finish_stop_with_tools",  # finish_reason "stop" with tool calls (lmstudio #821)
        "finish_function_call_with_tools",  # the deprecated "function_call" with tool calls, even for a named choice
        "finish_tool_calls_when_cut",  # a call cut by max_tokens still says "tool_calls"
        "no_capabilities",  # /api/v0/models without capabilities
        "empty_name_later",  # later tool deltas carry name "" (lmstudio #649)
        "repeat_name",  # later tool deltas repeat id and name (vllm #14951)
        "system_not_counted",  # prompt_tokens ignores system messages
        "tools_not_counted",  # prompt_tokens ignores tool definitions
        "args_one_chunk",  # streamed arguments sent whole in one delta
        "args_truncated",  # the last streamed argument fragment is lost
        "empty_args",  # a tool without parameters gets arguments "" (vllm #28806)
        "no_usage_chunk",  # include_usage ignored (lmstudio #676/#713)
        "usage_unasked",  # usage chunk without include_usage (llama.cpp #12102)
        "stream_error_field",  # stream errors as an SSE `error:` field (llama.cpp #16104)
        "stream_error_unterminated",  # stream error in an event never terminated
        "reject_response_format_text",  # 400 on response_format text (lmstudio #307/#189)
        "drop_second_call",  # streams drop parallel calls after the first (lmstudio #723/#759)
        "strip_defs",  # $defs stripped: arguments do not follow the $ref (lmstudio #551)
        "stream_usage_wrong",  # streamed usage differs from non-streamed usage
        "interleave_calls",  # parallel call fragments interleaved
        "index_gap",  # second parallel call gets index 2
        "normalise_names",  # tool names returned snake_cased
        "reject_no_properties",  # 500 on parameters without properties
        "reject_nested",  # 400 on nested parameters
        "embedding_zero",  # all-zero vectors
        "embeddings_missing_one",  # one vector fewer than inputs
        "base64_float64",  # base64 of float64 instead of float32
        "shared_call_id",  # parallel calls share one id
        "ignore_parallel_false",  # parallel_tool_calls false still gets two calls
        "json_invalid",  # response_format json_* answered with prose
        "json_schema_500",  # 500 on response_format json_schema (llama-cpp-python)
        # not bugs: answers that leave a check's feature unexercised
        "ignore_tool_choice",  # tool_choice required or named answered with text, as for auto
        "single_call",  # one tool call where two cities were asked about (the model's choice)
        "short_answers",  # every text answer is one word: nothing reaches max_tokens
        "short_calls",  # a tool call costs 5 tokens: max_tokens never cuts one
        "no_usage",  # answers without usage, streams without a usage chunk
        "truncate_long_prompts",  # a prompt longer than the context is truncated, not refused
        "no_reasoning",  # the model does not reason
        "no_lmstudio_api",  # /api/v0 routes answer 404, draft_model is ignored
        "lmstudio_unexpected",  # /api/v0 routes answer LM Studio's "Unexpected endpoint" 200
        "ignore_presets",  # `preset` is ignored, known or not (as llama-server, or LM Studio #1389 for sampling)
    }
)

_ANSWERS = {
    "name a colour": "Blue is a calm colour.",
    "name three fruits": "Apple, banana and cherry.",
    "count from 1 to 50": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10.",
    "capital of france": "Paris.",
    "what is my name": "Your name is Ada.",
    "think step by step": "Two plus three is five.",
}
_DEFAULT_ANSWER = "Hello! How can I help you today?"
_REASONING = "The user adds two small numbers."
_CAPITAL = {"city": "Paris", "country": "France"}
_CALL_TOKENS = 30
"""What one tool call costs in completion tokens on the fake server."""
_WORD = re.compile(r"\S+\s*")


class FakeServer:
    """Answers a RequestSpec with an Exchange, as a correct server would, except for the switched-on `bugs`."""

    def __init__(self, bugs: Iterable[str] = (), *, target: Target = TARGET) -> None:
        unknown = set(bugs) - BUGS
        if unknown:
            raise ValueError(f"unknown fake-server bugs: {sorted(unknown)}")
        self.bugs = frozenset(bugs)
        self.target = target
        self.counter = 0

    def __call__(self, spec: RequestSpec) -> Exchange:
        self.counter += 1
        body: Any = spec.body
        if isinstance(body, bytes):
            try:
                body = json.loads(body)
            except ValueError:
                body = body.decode(errors="replace")
        request = Request(spec.method, self.target.base_url + spec.path, spec.path, dict(spec.headers), body)
        status, payload = self._answer(spec.path, spec.method, body)
        if isinstance(payload, str):
            events, tail = parse_sse(payload.encode())
            response = Response(status, {"content-type": "text/event-stream"}, events=tuple(events), tail=tail)
        else:
            response = Response(status, {"content-type": "application/json"}, body=payload)
        return Exchange(request, response)

    # -- routing --------------------------------------------------------------------------------------------

    def _answer(self, path: str, method: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/v1/models":
            entry: dict[str, Any] = {"id": self.target.model, "created": 1, "owned_by": "fake"}
            if "models_schema" not in self.bugs:
                entry["object"] = "model"
            return 200, {"object": "list", "data": [entry]}
        if path.startswith("/api/") and "no_lmstudio_api" in self.bugs:
            return 404, {"error": {"message": f"Cannot {method} {path}", "type": "not_found_error"}}
        if path.startswith("/api/") and "lmstudio_unexpected" in self.bugs:
            return 200, {"error": f"Unexpected endpoint or method. ({method} {path})"}
        if method == "GET" and path == "/api/v0/models":
            model: dict[str, Any] = {"id": self.target.model, "object": "model", "type": "llm"}
            if "no_capabilities" not in self.bugs:
                model["capabilities"] = ["tool_use"]
            return 200, {"object": "list", "data": [model]}
        if not isinstance(body, dict):
            return self._invalid("the body is not valid JSON")
        if path == "/v1/embeddings":
            return self._embeddings(body)
        if body.get("model") != self.target.model and "unknown_model_ok" not in self.bugs:
            return self._error(body, 404, f"model {body.get('model')!r} not found")
        if path == "/v1/completions":
            return self._complete(body, chat=False)
        if "messages" not in body:
            return self._invalid("`messages` is required")
        if not isinstance(body["messages"], list):
            return self._invalid("`messages` must be a list")
        return self._chat(body)

    def _invalid(self, message: str) -> tuple[int, Any]:
        if "fastapi_422" in self.bugs:
            return 422, {"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]}
        return 400, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}

    def _error(self, body: dict[str, Any], status: int, message: str) -> tuple[int, Any]:
        error = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        if body.get("stream"):
            if "stream_error_field" in self.bugs:
                return 200, f"error: {json.dumps(error['error'])}\n\n"
            if "stream_error_unterminated" in self.bugs:
                return 200, f"data: {json.dumps(error)}"
        return status, error

    # -- chat -----------------------------------------------------------------------------------------------

    def _chat(self, body: dict[str, Any]) -> tuple[int, Any]:
        messages = body["messages"]
        preset = body.get("preset")
        if preset is not None and "ignore_presets" not in self.bugs:
            if preset != PRESET:
                return self._invalid(f"no preset named {preset!r}")
            if not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
                messages = [{"role": "system", "content": PRESET_SYSTEM}, *messages]
        tools = body.get("tools") or []
        choice = body.get("tool_choice")
        roles = {m.get("role") for m in messages if isinstance(m, dict)}
        if "reject_history" in self.bugs and "assistant" in roles:
            return self._invalid("assistant messages are not supported")
        if "reject_tool_messages" in self.bugs and "tool" in roles:
            return self._invalid("tool messages are not supported")
        if "reject_ttl" in self.bugs and "ttl" in body:
            return self._invalid("unknown field ttl")
        if "reject_response_format_text" in self.bugs and body.get("response_format") == {"type": "text"}:
            return self._invalid("response_format.type must be 'json_schema'")
        if "reject_auto" in self.bugs and choice == "auto":
            return self._invalid("tool_choice auto is not supported")
        if "auto_stream_crash" in self.bugs and tools and choice == "auto" and body.get("stream"):
            return 500, {"error": {"message": "'NoneType' object is not subscriptable", "type": "server_error"}}
        for tool in tools:
            params = tool.get("function", {}).get("parameters")
            if "reject_no_properties" in self.bugs and isinstance(params, dict) and "properties" not in params:
                return 500, {"error": {"message": "Cannot read properties of undefined (reading 'properties')"}}
            if "reject_nested" in self.bugs and "object" in json.dumps(params).split('"type": "object"', 1)[-1]:
                return self._invalid("nested parameters are not supported")
        user = " ".join(str(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user")
        structured = (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")
        if "json_schema_500" in self.bugs and (body.get("response_format") or {}).get("type") == "json_schema":
            return 500, {"error": {"message": "'NoneType' object has no attribute 'get'", "type": "server_error"}}
        if len(user) > 20000 and "truncate_long_prompts" not in self.bugs:
            return self._error(body, 400, "the prompt is longer than the context (2048 tokens)")
        calls = self._calls(user, tools, choice, body.get("parallel_tool_calls"))
        text = None if calls else self._text(user)
        if structured and text is not None and "json_invalid" not in self.bugs:
            text = json.dumps(_CAPITAL)
        if text is not None and "think_leak" in self.bugs:
            text = "<think>The user wants an answer.</think>" + text
        if text is not None and "harmony_leak" in self.bugs:
            text = "<|channel|>analysis<|message|>Easy.<|end|>" + text
        prompt_tokens = self._prompt_tokens(messages, tools)
        if body.get("stream"):
            return 200, self._chat_stream(body, text, calls, prompt_tokens)
        return 200, self._chat_body(body, text, calls, prompt_tokens)

    def _text(self, user: str) -> str:
        lowered = user.lower()
        answer = next((a for k, a in _ANSWERS.items() if k in lowered), _DEFAULT_ANSWER)
        if "short_answers" in self.bugs:
            answer = answer.split()[0]
        if "nondeterministic" in self.bugs:
            answer = f"{answer} ({self.counter})"
        return answer

    def _calls(
        self, user: str, tools: list[dict[str, Any]], choice: Any, parallel: Any = None
    ) -> list[tuple[str, dict[str, Any]]]:
        if not tools or "ignore_tool_choice" in self.bugs:
            return []
        if choice == "none" and "ignore_tool_choice_none" not in self.bugs:
            return []
        if choice in (None, "auto"):
            return []
        functions = [t["function"] for t in tools]
        chosen = functions[0]
        if isinstance(choice, dict) and "ignore_named_choice" not in self.bugs:
            chosen = next(f for f in functions if f["name"] == choice["function"]["name"])
        cities = [c for c in ("Paris", "Tokyo") if c in user] or ["Paris"]
        name = chosen["name"]
        if "normalise_names" in self.bugs:
            name = re.sub(r"[^a-z0-9]+", "_", re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower())
        params = chosen.get("parameters") or {}
        if "city" not in json.dumps(params) or "single_call" in self.bugs:
            cities = cities[:1]
        if parallel is False and "ignore_parallel_false" not in self.bugs:
            cities = cities[:1]
        return [(name, _arguments(params, city, "strip_defs" in self.bugs)) for city in cities]

    def _prompt_tokens(self, messages: list[Any], tools: list[Any]) -> int:
        count = 0
        for m in messages:
            if not isinstance(m, dict) or (m.get("role") == "system" and "system_not_counted" in self.bugs):
                continue
            count += 4 + len(_WORD.findall(str(m.get("content") or "")))
        if "tools_not_counted" not in self.bugs:
            count += sum(len(_WORD.findall(json.dumps(t))) for t in tools)
        return count

    def _limited(self, body: dict[str, Any], text: str) -> tuple[list[str], str]:
        words = _WORD.findall(text)
        limit = body.get("max_tokens")
        if isinstance(limit, int) and len(words) > limit and "ignore_max_tokens" not in self.bugs:
            return words[:limit], "length"
        return words, "stop"

    def _chat_body(
        self, body: dict[str, Any], text: str | None, calls: list[tuple[str, dict[str, Any]]], prompt: int
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish = "tool_calls"
        completion = 0
        if calls and "calls_in_content" in self.bugs:
            name, args = calls[0]
            text, calls = f'<tool_call>{{"name": "{name}", "arguments": {json.dumps(args)}}}</tool_call>', []
        if calls:
            message["tool_calls"] = [
                {"id": self._call_id(k), "type": "function", "function": {"name": n, "arguments": self._args_text(a)}}
                for k, (n, a) in enumerate(calls)
            ]
            completion = self._call_tokens() * len(calls)
            finish = self._call_finish(body)
            limit = body.get("max_tokens")
            if isinstance(limit, int) and limit < completion:
                completion = limit
                first = message["tool_calls"][0]["function"]
                first["arguments"] = first["arguments"][: limit // 3]
                message["tool_calls"] = message["tool_calls"][:1]
                finish = "tool_calls" if "finish_tool_calls_when_cut" in self.bugs else "length"
        else:
            words, finish = self._limited(body, text or "")
            message["content"] = "".join(words)
            completion = len(words)
            if self._reasons(body):
                message["reasoning_content"] = _REASONING
        result: dict[str, Any] = {
            "id": f"chatcmpl-{self.counter}",
            "object": "chat.completion",
            "created": 1700000000 + self.counter,
            "model": self.target.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
        if "no_usage" in self.bugs:
            del result["usage"]
        if "schema_body" in self.bugs:
            del result["created"]
            result["choices"][0]["finish_reason"] = "eos"
        if isinstance(body.get("draft_model"), str) and not {"no_stats", "no_lmstudio_api"} & self.bugs:
            result["stats"] = {
                "tokens_per_second": 42.5,
                "draft_model": body["draft_model"],
                "total_draft_tokens_count": 6,
                "accepted_draft_tokens_count": 4,
                "rejected_draft_tokens_count": 2,
                "ignored_draft_tokens_count": 0,
            }
        return result

    def _call_finish(self, body: dict[str, Any]) -> str:
        """finish_reason of an answer with tool calls; a correct server says "stop" for a named tool_choice, as
        OpenAI does (and "tool_calls" otherwise)."""
        if "finish_function_call_with_tools" in self.bugs:
            return "function_call"
        if "finish_stop_with_tools" in self.bugs or isinstance(body.get("tool_choice"), dict):
            return "stop"
        return "tool_calls"

    def _call_id(self, k: int) -> str:
        return "call_0" if "shared_call_id" in self.bugs else f"call_{k}"

    def _call_tokens(self) -> int:
        return 5 if "short_calls" in self.bugs else _CALL_TOKENS

    def _reasons(self, body: dict[str, Any]) -> bool:
        """The fake model reasons on the reasoning prompt (unless told not to)."""
        return "think step by step" in json.dumps(body.get("messages")).lower() and "no_reasoning" not in self.bugs

    def _args_text(self, args: dict[str, Any]) -> str:
        if not args and "empty_args" in self.bugs:
            return ""
        return json.dumps(args)

    def _chat_stream(
        self, body: dict[str, Any], text: str | None, calls: list[tuple[str, dict[str, Any]]], prompt: int
    ) -> str:
        head = {"id": f"chatcmpl-{self.counter}", "object": "chat.completion.chunk", "created": 1700000000}
        head["model"] = self.target.model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        first: dict[str, Any] = {"content": ""} if "role_missing" in self.bugs else {"role": "assistant", "content": ""}
        chunks = [chunk(first)]
        if calls and "calls_in_content" in self.bugs:
            name, args = calls[0]
            text, calls = f'<tool_call>{{"name": "{name}", "arguments": {json.dumps(args)}}}</tool_call>', []
        if calls:
            chunks += self._call_chunks(chunk, calls)
            finish = self._call_finish(body)
            completion = self._call_tokens() * len(calls)
        else:
            if self._reasons(body):
                chunks.append(chunk({"reasoning_content": _REASONING}))
            if "stream_differs" in self.bugs:
                text = (text or "") + " And more."
            words, finish = self._limited(body, text or "")
            if finish == "length" and "stream_finish_stop_on_length" in self.bugs:
                finish = "stop"
            chunks += [chunk({"content": w}) for w in words]
            completion = len(words)
        chunks.append(chunk({}, finish))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if "stream_usage_wrong" in self.bugs:
            usage = {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1}
        options = body.get("stream_options") or {}
        asked = options.get("include_usage") is True
        if (asked and not {"no_usage_chunk", "no_usage"} & self.bugs) or (not asked and "usage_unasked" in self.bugs):
            chunks.append({**head, "choices": [], "usage": usage})
        return _sse(chunks, done="no_done" not in self.bugs)

    def _call_chunks(
        self, chunk: Callable[[dict[str, Any]], dict[str, Any]], calls: list[tuple[str, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        if "drop_second_call" in self.bugs:
            calls = calls[:1]
        per_call: list[list[dict[str, Any]]] = []
        for k, (name, args) in enumerate(calls):
            index = 2 if k == 1 and "index_gap" in self.bugs else k
            text = self._args_text(args)
            if "stream_args_differ" in self.bugs:
                text = text.replace("Paris", "Lyon")
            fragments = [text] if "args_one_chunk" in self.bugs else [text[i : i + 6] for i in range(0, len(text), 6)]
            if "args_truncated" in self.bugs and len(fragments) > 1:
                fragments = fragments[:-1]
            start = {
                "index": index,
                "id": self._call_id(k),
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            deltas = [start]
            for fragment in fragments:
                later: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
                if "empty_name_later" in self.bugs:
                    later["function"]["name"] = ""
                if "repeat_name" in self.bugs:
                    later["id"] = f"call_{k}"
                    later["function"]["name"] = name
                deltas.append(later)
            if "no_index" in self.bugs:
                for d in deltas:
                    d.pop("index")
            per_call.append(deltas)
        if "interleave_calls" in self.bugs and len(per_call) > 1:
            ordered = [d for pair in zip(*per_call, strict=False) for d in pair]
        else:
            ordered = [d for deltas in per_call for d in deltas]
        return [chunk({"tool_calls": [d]}) for d in ordered]

    # -- completions and embeddings ---------------------------------------------------------------------------

    def _complete(self, body: dict[str, Any], *, chat: bool) -> tuple[int, Any]:
        prompt = str(body.get("prompt", ""))
        words, finish = self._limited(body, " Paris, the city of light.")
        prompt_tokens = len(_WORD.findall(prompt))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words)}
        usage["total_tokens"] = prompt_tokens + len(words)
        head = {"id": f"cmpl-{self.counter}", "object": "text_completion", "created": 1700000000}
        head["model"] = self.target.model
        if not body.get("stream"):
            result = {**head, "choices": [{"index": 0, "text": "".join(words), "finish_reason": finish}]}
            result["usage"] = usage
            if "schema_body" in self.bugs:
                result["object"] = "completion"
            return 200, result
        if "stream_differs" in self.bugs:
            words = [*words, " More."]
        chunks = [{**head, "choices": [{"index": 0, "text": w, "finish_reason": None}]} for w in words]
        chunks.append({**head, "choices": [{"index": 0, "text": "", "finish_reason": finish}]})
        asked = (body.get("stream_options") or {}).get("include_usage") is True
        if (asked and "no_usage_chunk" not in self.bugs) or (not asked and "usage_unasked" in self.bugs):
            chunks.append({**head, "choices": [], "usage": usage})
        return 200, _sse(chunks, done="no_done" not in self.bugs)

    def _embeddings(self, body: dict[str, Any]) -> tuple[int, Any]:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        if "embeddings_missing_one" in self.bugs and len(texts) > 1:
            texts = texts[:-1]
        data = []
        for k, text in enumerate(texts):
            vector = [0.0] * 8 if "embedding_zero" in self.bugs else _vector(str(text))
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                fmt = "<8d" if "base64_float64" in self.bugs else "<8f"
                embedding = base64.b64encode(struct.pack(fmt, *vector)).decode()
            data.append({"object": "embedding", "index": k, "embedding": embedding})
        tokens = sum(len(_WORD.findall(str(t))) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, {"object": "list", "data": data, "model": self.target.model, "usage": usage}


def _arguments(schema: Any, city: str, strip_defs: bool) -> dict[str, Any]:
    """Minimal arguments valid against a tool's parameters (every property filled)."""
    if not isinstance(schema, dict):
        return {}
    defs = schema.get("$defs", {})

    def value(s: dict[str, Any], key: str) -> Any:
        if "$ref" in s:
            if strip_defs:
                return city
            s = defs[s["$ref"].rsplit("/", 1)[-1]]
        if "enum" in s:
            return s["enum"][0]
        kind = s.get("type")
        if kind == "object":
            return {k: value(v, k) for k, v in s.get("properties", {}).items()}
        if kind == "array":
            return [value(s.get("items", {}), key)]
        if kind == "integer":
            return 3
        return {"city": city, "country": "France"}.get(key, city)

    return {k: value(v, k) for k, v in schema.get("properties", {}).items()}


def _vector(text: str) -> list[float]:
    seed = sum(map(ord, text))
    return [round(((seed * (k + 3)) % 97) / 97.0 + 0.01, 4) for k in range(8)]


def _sse(chunks: list[dict[str, Any]], *, done: bool) -> str:
    return Wire.sse_text(chunks, done=done)


TTL_SHAPE = [
    ["list", 200],
    ["request", 200, True],
    ["state", 200, "loaded"],
    ["state", 200, "not-loaded"],
    ["request", 200, True],
    ["state", 200, "loaded"],
]
"""The fingerprint of a passing 0.3.9/ttl check: listed, JIT-loaded, unloaded after its ttl, loaded again."""


def run_check(check: Check, server: Callable[[RequestSpec], Exchange], target: Target = TARGET) -> list[Finding]:
    """Drive a check's plan against `server` (a function RequestSpec -> Exchange) and return its verdict."""
    exchanges = run_plan(check, server, target)
    return list(check.verdict(exchanges))


def run_plan(check: Check, server: Callable[[RequestSpec], Exchange], target: Target = TARGET) -> list[Exchange]:
    plan = check.plan(target)
    exchanges: list[Exchange] = []
    try:
        spec = next(plan)
        while True:
            exchange = server(spec)
            exchanges.append(exchange)
            spec = plan.send(exchange)
    except StopIteration:
        pass
    return exchanges


def record(client: httpx.Client, target: Target, check: Check) -> list[Exchange]:
    """The exchanges of one run of a check's plan against a real server (`target.base_url`)."""
    return run_plan(check, lambda spec: send(client, target, spec), target)


def event_payloads(exchange: Exchange) -> list[dict[str, Any]]:
    """The JSON data of each event of a streamed exchange."""
    assert exchange.response is not None
    assert exchange.response.events is not None
    return [json.loads(e.data) for e in exchange.response.events if e.data is not None]


@pytest.fixture
def wire() -> type[Wire]:
    return Wire


@pytest.fixture
def fake_server() -> Callable[..., FakeServer]:
    """Factory: fake_server("no_index", ...) -> a FakeServer with those bugs."""

    def make(*bugs: str) -> FakeServer:
        return FakeServer(bugs)

    return make


@pytest.fixture
def check_runner() -> Callable[..., list[Finding]]:
    """run_check(check, server, target=TARGET) -> the check's findings."""
    return run_check


@pytest.fixture(scope="session")
def plan_runner() -> Callable[..., list[Exchange]]:
    """run_plan(check, server, target=TARGET) -> the exchanges the check's plan produced."""
    return run_plan
