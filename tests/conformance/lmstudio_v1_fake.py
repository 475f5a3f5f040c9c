"""A test double of LM Studio's native REST API v1 (and the /api/v0/models list), answering as the docs say.

It stands in for a server until one speaks /api/v1: the checks of `conformance.catalog.lmstudio_v1` must pass on
it, and tests break its answers to see them fail. Its "model" answers by rule (words of a fixed sentence, one
token per word, a chat template of 3 tokens per message plus 2), stores chats for `previous_response_id`, and
calls `ephemeral_mcp` integrations for real through the reference server's MCP client.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reference_server.mcp_client import McpFailure, McpServer, call_tool

__all__ = ["MODEL", "FakeLmStudio", "fake_app"]

MODEL = "fake-llm"
_ANSWER = "Hello there, I am a fake model answering by rule and nothing else at all today".split()  # noqa: SIM905  # a sentence reads better than a list of its words


def _row(key: str, *, kind: str = "llm", size: int, loaded: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "type": kind,
        "publisher": "fake",
        "key": key,
        "display_name": key.title(),
        "quantization": {"name": "Q4_0", "bits_per_weight": 4},
        "size_bytes": size,
        "params_string": "135M" if kind == "llm" else None,
        "loaded_instances": [{"id": key, "config": {"context_length": 4096}}] if loaded else [],
        "max_context_length": 8192,
        "format": "gguf",
    }
    if kind == "llm":
        row |= {
            "architecture": "llama",
            "capabilities": {"vision": False, "trained_for_tool_use": True},
            "description": None,
        }
    return row


@dataclass
class FakeLmStudio:
    """The server's state; tests flip its switches to make it misbehave."""

    models: list[dict[str, Any]] = field(
        default_factory=lambda: [
            _row(MODEL, size=100, loaded=True),
            _row("fake-jit", size=200, loaded=False),
            _row("fake-embed", kind="embedding", size=50, loaded=False),
        ]
    )
    chats: dict[str, list[str]] = field(default_factory=dict)
    refuse_loopback: bool = False
    tools: str = "call"
    """What the "model" does with an ephemeral MCP server's tools: `call` them, `decline` (they are in its
    prompt, it answers without calling) or `ignore` (the server drops the integration)."""
    mcp_calls: list[dict[str, Any]] = field(default_factory=list)

    def row(self, key: str) -> dict[str, Any] | None:
        return next((m for m in self.models if m["key"] == key), None)


def _error(status: int, kind: str, message: str, param: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if param is not None:
        body["param"] = param
    return JSONResponse({"error": body}, status_code=status)


def _messages(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(part.get("content", "")) for part in value if isinstance(part, dict) and part.get("type") == "text"]


def fake_app(state: FakeLmStudio | None = None) -> Starlette:
    """The ASGI app; `app.state.fake` is its FakeLmStudio."""
    fake = state or FakeLmStudio()

    async def models(request: Request) -> Response:
        return JSONResponse({"models": fake.models})

    async def v0_models(request: Request) -> Response:
        data = [
            {
                "id": m["key"],
                "object": "model",
                "type": m["type"],
                "state": "loaded" if m["loaded_instances"] else "not-loaded",
            }
            | ({"capabilities": ["tool_use"]} if m["type"] == "llm" else {})
            for m in fake.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def load(request: Request) -> Response:
        body = await request.json()
        row = fake.row(str(body.get("model")))
        if row is None:
            return _error(404, "model_not_found", f"Model {body.get('model')!r} not found", "model")
        context = int(body.get("context_length") or 4096)
        row["loaded_instances"].append({"id": row["key"], "config": {"context_length": context}})
        answer: dict[str, Any] = {
            "type": row["type"],
            "instance_id": row["key"],
            "load_time_seconds": 0.5,
            "status": "loaded",
        }
        if body.get("echo_load_config") is True:
            answer["load_config"] = {"context_length": context}
        return JSONResponse(answer)

    async def unload(request: Request) -> Response:
        instance = (await request.json()).get("instance_id")
        for row in fake.models:
            kept = [i for i in row["loaded_instances"] if i["id"] != instance]
            if len(kept) != len(row["loaded_instances"]):
                row["loaded_instances"] = kept
                return JSONResponse({"instance_id": instance})
        return _error(404, "model_not_found", f"No loaded instance {instance!r}", "instance_id")

    async def chat(request: Request) -> Response:
        body = await request.json()
        history: list[str] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            if previous not in fake.chats:
                return _error(400, "invalid_request", f"No response with id {previous!r}", "previous_response_id")
            history = list(fake.chats[previous])
        turn = _messages(body.get("input", ""))
        prompt_tokens = sum(len(text.split()) + 3 for text in [*history, *turn]) + 2
        limit = int(body.get("max_output_tokens") or len(_ANSWER))
        output: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for integration in body.get("integrations") or []:
            if not isinstance(integration, dict) or integration.get("type") != "ephemeral_mcp":
                continue
            if fake.refuse_loopback:
                return _error(
                    400,
                    "mcp_connection_error",
                    f"Unable to connect to remote MCP server '{integration.get('server_label')}' at url "
                    f"'{integration.get('server_url')}'. URL resolves to a non-public address. We only allow public "
                    "addresses for dynamic remote MCP connections.",
                )
            if fake.tools == "ignore":
                continue
            prompt_tokens += 12  # the tool's definition in the prompt
            if fake.tools == "decline":
                continue
            info = {"type": "ephemeral_mcp", "server_label": integration["server_label"]}
            server = McpServer(integration["server_label"], integration["server_url"])
            arguments = {"sides": 20}
            try:
                text, _ = await call_tool(server, "roll_dice", arguments)
            except McpFailure as exc:
                return _error(502, "mcp_connection_error", str(exc))
            fake.mcp_calls.append(arguments)
            output.append(
                {
                    "type": "tool_call",
                    "tool": "roll_dice",
                    "arguments": arguments,
                    "output": text,
                    "provider_info": info,
                }
            )
            events += [
                {"type": "tool_call.start", "tool": "roll_dice", "provider_info": info},
                {"type": "tool_call.arguments", "tool": "roll_dice", "arguments": arguments, "provider_info": info},
                {
                    "type": "tool_call.success",
                    "tool": "roll_dice",
                    "arguments": arguments,
                    "output": text,
                    "provider_info": info,
                },
            ]
        words = _ANSWER[:limit]
        deltas = [w if n == 0 else " " + w for n, w in enumerate(words)]
        answer = "".join(deltas)
        output.append({"type": "message", "content": answer})
        result: dict[str, Any] = {
            "model_instance_id": str(body.get("model") or MODEL),
            "output": output,
            "stats": {
                "input_tokens": prompt_tokens,
                "total_output_tokens": len(words),
                "reasoning_output_tokens": 0,
                "tokens_per_second": 100.0,
                "time_to_first_token_seconds": 0.01,
            },
        }
        if body.get("store", True) is not False:
            response_id = "resp_" + secrets.token_hex(24)
            fake.chats[response_id] = [*history, *turn, answer]
            result["response_id"] = response_id
        if body.get("stream") is not True:
            return JSONResponse(result)
        events = [
            {"type": "chat.start", "model_instance_id": result["model_instance_id"]},
            {"type": "prompt_processing.start"},
            {"type": "prompt_processing.progress", "progress": 1.0},
            {"type": "prompt_processing.end"},
            *events,
            {"type": "message.start"},
            *({"type": "message.delta", "content": d} for d in deltas),
            {"type": "message.end"},
            {"type": "chat.end", "result": result},
        ]

        async def stream() -> AsyncIterator[bytes]:
            for event in events:
                yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()

        return StreamingResponse(stream(), media_type="text/event-stream")

    app = Starlette(
        routes=[
            Route("/api/v1/models", models, methods=["GET"]),
            Route("/api/v0/models", v0_models, methods=["GET"]),
            Route("/api/v1/models/load", load, methods=["POST"]),
            Route("/api/v1/models/unload", unload, methods=["POST"]),
            Route("/api/v1/chat", chat, methods=["POST"]),
        ]
    )
    app.state.fake = fake
    return app
