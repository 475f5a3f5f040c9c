"""Remote MCP servers (/v1/responses `mcp` tools, /api/v1/chat `ephemeral_mcp` integrations): list a server's
tools and call one (streamable HTTP)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import mcp.types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client  # the SDK's client factory, MCP's timeouts

__all__ = ["McpFailure", "McpServer", "McpTool", "Toolbox", "call_tool", "list_tools"]


class McpFailure(Exception):
    """The MCP server could not be reached or refused the request; the message says which server and why."""


@dataclass(frozen=True)
class McpServer:
    """An `mcp` tool of a request: where the server is and which of its tools the model may use."""

    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, hash=False)
    allowed: frozenset[str] | None = None


@dataclass(frozen=True)
class McpTool:
    name: str
    description: str | None
    input_schema: dict[str, Any] = field(hash=False)
    annotations: dict[str, Any] | None = field(default=None, hash=False)


@asynccontextmanager
async def _connected(server: McpServer) -> AsyncIterator[Client]:
    """A client session with the server; its HTTP client is closed with it (the transport leaves that to us)."""
    async with (
        create_mcp_http_client(headers=server.headers or None) as http,
        Client(streamable_http_client(server.url, http_client=http)) as client,
    ):
        yield client


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _failure(server: McpServer, exc: BaseException) -> McpFailure:
    detail = "; ".join(f"{type(c).__name__}: {c}" for c in _leaves(exc))
    return McpFailure(f"MCP server {server.label!r} at {server.url} failed: {detail}")


async def list_tools(server: McpServer) -> list[McpTool]:
    """The server's tools the request allows."""
    try:
        async with _connected(server) as client:
            listed = await client.list_tools()
    except Exception as exc:
        raise _failure(server, exc) from exc
    tools = [
        McpTool(
            name=tool.name,
            description=tool.description,
            input_schema=dict(tool.input_schema),
            annotations=tool.annotations.model_dump(exclude_none=True) if tool.annotations else None,
        )
        for tool in listed.tools
    ]
    return [tool for tool in tools if server.allowed is None or tool.name in server.allowed]


async def call_tool(server: McpServer, name: str, arguments: dict[str, Any]) -> tuple[str, str | None]:
    """(output text, error) of one call: the error is the tool's own failure (is_error) or None."""
    try:
        async with _connected(server) as client:
            result = await client.call_tool(name, arguments)
    except Exception as exc:
        raise _failure(server, exc) from exc
    text = "\n".join(_text(part) for part in result.content)
    return text, (text or "the tool failed") if result.is_error else None


def _text(part: Any) -> str:
    if isinstance(part, mcp.types.TextContent):
        return part.text
    dumped = part.model_dump(exclude_none=True) if hasattr(part, "model_dump") else part
    return json.dumps(dumped, ensure_ascii=False, default=str)


@dataclass
class Toolbox:
    """The tools of several MCP servers, each name bound to the one server that offers it."""

    tools: list[McpTool] = field(default_factory=list)
    servers: dict[str, McpServer] = field(default_factory=dict)
    listed: list[tuple[McpServer, list[McpTool]]] = field(default_factory=list)
    """Each server with the tools it offers (for a per-server listing such as Responses' mcp_list_tools)."""

    @classmethod
    async def connect(cls, servers: Sequence[McpServer]) -> Toolbox:
        """Every server's allowed tools: McpFailure if one cannot be reached, ValueError if two offer a name."""
        box = cls()
        for server in servers:
            tools = await list_tools(server)
            box.listed.append((server, tools))
            for tool in tools:
                if tool.name in box.servers:
                    raise ValueError(
                        f"two MCP servers ({box.servers[tool.name].label!r} and {server.label!r}) offer a tool named "
                        f"{tool.name!r}; restrict one with allowed_tools"
                    )
                box.servers[tool.name] = server
                box.tools.append(tool)
        return box

    def function_tools(self) -> list[dict[str, Any]]:
        """The tools as chat-completions function tools, for the shared chat pipeline."""
        return [
            {
                "type": "function",
                "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema},
            }
            for tool in self.tools
        ]
