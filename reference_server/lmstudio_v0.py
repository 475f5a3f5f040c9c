"""LM Studio's REST API v0 (/api/v0): model rows with their load state, and the generation routes' extra objects."""

from __future__ import annotations

import platform
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import llama_cpp
from fastapi import APIRouter, Request, Response

from reference_server.engine import Finished, FinishReason, Piece
from reference_server.models import Instance, Lease, ModelEntry, Models

__all__ = ["GenerationReport", "embedding_fields", "lmstudio_v0_router", "model_row", "runtime_info"]

_V0_TYPES = {"llm": "llm", "embedding": "embeddings"}


def runtime_info() -> dict[str, Any]:
    """The `runtime` object: the inference runtime this server runs models on."""
    return {
        "name": f"llama.cpp-{platform.system().lower()}-{platform.machine().lower()}",
        "version": llama_cpp.__version__,
        "supported_formats": ["gguf"],
    }


def stop_reason(finished: Finished, *, called_tools: bool) -> str:
    """LM Studio's stop reason (its SDK's LLMPredictionStopReason) for how a generation ended."""
    if finished.reason is FinishReason.LENGTH:
        return "maxPredictedTokensReached"
    if finished.reason is FinishReason.CANCELLED:
        return "userStopped"
    if called_tools:
        return "toolCalls"
    return "stopStringFound" if finished.stop_sequence is not None else "eosFound"


class GenerationReport:
    """Times one generation and writes the `stats`, `model_info` and `runtime` LM Studio adds to its answers."""

    def __init__(self, lease: Lease) -> None:
        self.instance = lease.instance
        self.started = time.perf_counter()
        self.first_token: float | None = None
        self.ended: float | None = None

    async def watch(self, events: AsyncIterator[Piece | Finished]) -> AsyncIterator[Piece | Finished]:
        async for event in events:
            if isinstance(event, Finished):
                self.ended = time.perf_counter()
            elif self.first_token is None:
                self.first_token = time.perf_counter()
            yield event

    def fields(self, finished: Finished, *, called_tools: bool) -> dict[str, Any]:
        ended = self.ended if self.ended is not None else time.perf_counter()
        first = self.first_token if self.first_token is not None else ended
        generating = max(ended - first, 0.0)
        return {
            "stats": {
                "tokens_per_second": round(finished.completion_tokens / generating, 3) if generating > 0 else 0.0,
                "time_to_first_token": round(first - self.started, 3),
                "generation_time": round(generating, 3),
                "stop_reason": stop_reason(finished, called_tools=called_tools),
            },
            "model_info": _model_info(self.instance),
            "runtime": runtime_info(),
        }


def _model_info(instance: Instance) -> dict[str, Any]:
    info = instance.entry.info
    return {"arch": info.arch, "quant": info.quantization, "format": "gguf", "context_length": instance.context_length}


def embedding_fields(lease: Lease, prompt_tokens: int, seconds: float) -> dict[str, Any]:
    """`stats`, `model_info` and `runtime` for /api/v0/embeddings. LM Studio's documented example has none; the
    stats here time the one pass over the input (no token is generated, so the input ran to its end)."""
    return {
        "stats": {
            "tokens_per_second": round(prompt_tokens / seconds, 3) if seconds > 0 else 0.0,
            "time_to_first_token": round(seconds, 3),
            "generation_time": round(seconds, 3),
            "stop_reason": "eosFound",
        },
        "model_info": _model_info(lease.instance),
        "runtime": runtime_info(),
    }


Answer = Callable[[Request, Callable[[Lease], GenerationReport]], Awaitable[Response]]
"""A /v1 generation route's handler, given a hook that adds LM Studio's fields (app.answer_chat and friends)."""


def model_row(models: Models, entry: ModelEntry) -> dict[str, Any]:
    """One row of GET /api/v0/models as LM Studio 0.4 writes it; `state` is read when the row is built."""
    info = entry.info
    row: dict[str, Any] = {
        "id": entry.key,
        "object": "model",
        "type": _V0_TYPES[entry.type],
        "publisher": info.publisher,
        "arch": info.arch,
        "compatibility_type": "gguf",
        "quantization": info.quantization,
        "state": models.state(entry.key),
        "max_context_length": info.max_context_length,
    }
    instance = models.instance(entry.key)
    if instance is not None:
        row["loaded_context_length"] = instance.context_length
    if entry.type == "llm":
        row["capabilities"] = ["tool_use"]
    return row


def lmstudio_v0_router(models: Models, *, chat: Answer, completion: Answer) -> APIRouter:
    """GET /api/v0/models and /models/{id} (every catalog entry, loaded or not), and POST /api/v0/chat/completions
    and /completions: the /v1 handlers (`chat`, `completion`) plus `stats`, `model_info` and `runtime`."""
    router = APIRouter()

    @router.post("/api/v0/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await chat(request, GenerationReport)

    @router.post("/api/v0/completions")
    async def completions(request: Request) -> Response:
        return await completion(request, GenerationReport)

    @router.get("/api/v0/models")
    async def list_models() -> dict[str, Any]:
        await models.refresh()
        return {"object": "list", "data": [model_row(models, entry) for entry in models.entries()]}

    @router.get("/api/v0/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        return model_row(models, await models.find(model_id))

    return router
