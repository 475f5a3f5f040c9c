"""Tool definitions and the tool-calling plan a request asks for (tool_choice, parallel_tool_calls)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["ToolMode", "ToolPlan", "ToolSpec"]


@dataclass(frozen=True)
class ToolSpec:
    """One function the client offers; parameters is its JSON Schema (None when the tool omits it)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = field(default=None, hash=False)


class ToolMode(StrEnum):
    """tool_choice: none (no call possible), auto (model decides), required (at least one), named (that one)."""

    NONE = "none"
    AUTO = "auto"
    REQUIRED = "required"
    NAMED = "named"


@dataclass(frozen=True)
class ToolPlan:
    """The tools of a request and how they may be called."""

    tools: tuple[ToolSpec, ...]
    mode: ToolMode
    named: str | None = None
    parallel: bool = True

    @property
    def active(self) -> bool:
        """Whether generation is constrained to the tool-call format."""
        return bool(self.tools) and self.mode is not ToolMode.NONE

    @property
    def callable_tools(self) -> tuple[ToolSpec, ...]:
        if self.mode is ToolMode.NAMED:
            return tuple(tool for tool in self.tools if tool.name == self.named)
        return self.tools
