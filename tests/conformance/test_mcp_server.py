"""The suite's loopback MCP server: one roll_dice tool whose answer carries DICE_OUTPUT."""

from __future__ import annotations

import asyncio

from conformance.mcp_server import DICE_OUTPUT, DICE_TOOL, loopback_mcp
from reference_server.mcp_client import McpServer, call_tool, list_tools


def test_loopback_mcp_serves_roll_dice_on_127_0_0_1() -> None:
    with loopback_mcp() as url:
        assert url.startswith("http://127.0.0.1:")
        server = McpServer(label="dice", url=url)
        tools = asyncio.run(list_tools(server))
        text, error = asyncio.run(call_tool(server, DICE_TOOL, {"sides": 20}))
    assert [t.name for t in tools] == [DICE_TOOL]
    assert (text, error) == (f"{DICE_OUTPUT} 4.", None)
