"""Chat prompt rendering with the GGUF's own Jinja template, tool definitions written into a system block."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reference_server.grammar import arguments_schema
from reference_server.tools import ToolMode, ToolPlan

__all__ = ["CHATML_TEMPLATE", "ChatTemplate", "PromptError", "tool_instructions"]

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# A fixed example pair: with it SmolLM2-135M calls get_weather-like tools under tool_choice "auto" (without it, it
# always chose "response"); the grammar still restricts calls to the client's own tools.
AUTO_EXAMPLES = (
    'Examples:\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": "London"}}]}\n'
    '{"response": "Hello! How can I help you?"}'
)


class PromptError(ValueError):
    """The messages cannot be rendered with this model's chat template."""


def _raise_exception(message: str) -> None:
    raise PromptError(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatTemplate:
    """A compiled chat template (Jinja, as in tokenizer.chat_template) and the special tokens it may use."""

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = "") -> None:
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        environment.filters["tojson"] = _tojson
        environment.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        self.source = source or CHATML_TEMPLATE
        self._template = environment.from_string(self.source)
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(self, messages: Sequence[dict[str, Any]]) -> str:
        """The prompt text for these messages, ending where the assistant's reply starts."""
        try:
            return self._template.render(
                messages=list(messages),
                add_generation_prompt=True,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except PromptError:
            raise
        except (TemplateError, TypeError, KeyError, IndexError, ValueError) as exc:
            raise PromptError(f"the model's chat template cannot render these messages: {exc}") from exc


def tool_instructions(plan: ToolPlan) -> str:
    """The system text that lists the tools (as JSON) and says how to call them."""
    listed = [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description or "",
                "parameters": arguments_schema(tool),
            },
        }
        for tool in plan.tools
    ]
    head = "You have access to the following functions:\n" + json.dumps(listed, indent=2, ensure_ascii=False)
    call_shape = '[{"name": <function name>, "arguments": <arguments object>}, ...]'
    if plan.mode is ToolMode.AUTO:
        return (
            f"{head}\n\nRespond in JSON, either with the calls to make as "
            f'{{"tool_calls": {call_shape}}} or, when no function helps, with your reply as '
            '{"response": "<your reply>"}.\n' + AUTO_EXAMPLES
        )
    if plan.mode is ToolMode.NAMED:
        return f"{head}\n\nCall the function {plan.named}. Reply with a JSON array of calls: {call_shape}"
    count = "one or more of them" if plan.parallel else "exactly one of them"
    return f"{head}\n\nCall {count}. Reply with a JSON array of calls: {call_shape}"
