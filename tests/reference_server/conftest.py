"""Fixtures shared by the reference server's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.mcp_server import loopback_mcp


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """The suite's loopback MCP server (the mcp package, streamable HTTP) with one dice tool, `roll_dice`."""
    with loopback_mcp() as url:
        yield url
