"""The suite's own MCP server on loopback (one `roll_dice` tool), for the checks of MCP tools and integrations."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["DICE_LABEL", "DICE_OUTPUT", "DICE_TOOL", "loopback_mcp"]

DICE_LABEL = "dice"
"""The server_label the checks give the suite's MCP server."""
DICE_TOOL = "roll_dice"
DICE_OUTPUT = "The llm-conformance die shows"
"""What the suite's MCP tool answers: a call whose output has it was really made."""


def _dice_server() -> Any:
    from mcp.server import MCPServer

    # WARNING: the SDK configures the root logger at this level if nothing did, and at INFO every request of the
    # run (httpx's log lines) would be printed among the results.
    server = MCPServer("llm-conformance-dice", log_level="WARNING")

    @server.tool()
    def roll_dice(sides: int = 6) -> str:
        """Roll a die with the given number of sides."""
        return f"{DICE_OUTPUT} {min(max(sides, 1), 4)}."

    return server.streamable_http_app(json_response=True, stateless_http=True)


@contextmanager
def loopback_mcp() -> Iterator[str]:
    """The suite's MCP server (one `roll_dice` tool, streamable HTTP) on 127.0.0.1: yields its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_dice_server(), lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mcp-loopback", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
