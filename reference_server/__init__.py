"""OpenAI-compatible reference server on llama-cpp-python: the suite's known-good target."""

from __future__ import annotations

from reference_server.app import create_app
from reference_server.embedded import serve_in_thread
from reference_server.engine import Engine

__all__ = ["Engine", "create_app", "serve_in_thread"]
