"""LM Studio's REST API v0 (/api/v0): model rows with their load state, and the generation routes' extra objects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from reference_server.models import ModelEntry, Models

__all__ = ["lmstudio_v0_router", "model_row"]

_V0_TYPES = {"llm": "llm", "embedding": "embeddings"}


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


def lmstudio_v0_router(models: Models) -> APIRouter:
    """GET /api/v0/models and /api/v0/models/{id}: every catalog entry, loaded or not."""
    router = APIRouter()

    @router.get("/api/v0/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_row(models, entry) for entry in models.entries()]}

    @router.get("/api/v0/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        return model_row(models, models.entry(model_id))

    return router
