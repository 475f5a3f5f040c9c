"""Replays a recorded Anthropic answer through the official `anthropic` SDK, as a real client would read it.

The recorded bytes are served to `anthropic.Anthropic` by an in-memory httpx2 transport (the SDK's HTTP
client), so the SDK's own SSE decoder (which dispatches on `event:` names and drops data without one) and
its stream accumulator (`messages.stream(...).get_final_message()`) judge the stream; nothing touches the
network.
"""

from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
from anthropic.resources.messages import Messages

from conformance.verdicts.anthropic.view import MessagesView

__all__ = ["SdkReplay", "sdk_replay"]

_PARAMS = frozenset(inspect.signature(Messages.stream).parameters) - {
    "self",
    "extra_headers",
    "extra_query",
    "extra_body",
    "timeout",
}
"""The request fields `messages.stream()` takes by name in the installed SDK; the others go in `extra_body`."""


@dataclass(frozen=True)
class SdkReplay:
    """What the SDK made of a successful answer: the message as a dict, or the error it raised."""

    message: dict[str, Any] | None
    error: str | None = None


def _wire_bytes(view: MessagesView) -> bytes:
    response = view.response
    assert response is not None
    if response.events is not None:
        return ("".join(event.raw + "\n\n" for event in response.events) + response.tail).encode()
    return json.dumps(response.body).encode()


def sdk_replay(view: MessagesView) -> SdkReplay | None:
    """The SDK's reading of a 2xx /v1/messages answer (stream or not); None for anything else. Memoised."""
    if not view.ok or view.surface.value != "messages" or view.response is None:
        return None
    if "sdk" in view.memo:
        cached: SdkReplay = view.memo["sdk"]
        return cached
    response = view.response
    content = _wire_bytes(view)
    media = "text/event-stream" if response.events is not None else "application/json"

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(response.status, headers={"content-type": media}, content=content)

    params = {k: v for k, v in view.request.items() if k in _PARAMS}
    extra = {k: v for k, v in view.request.items() if k not in _PARAMS and k != "stream"}
    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = anthropic.Anthropic(
            api_key="recorded", base_url="http://recorded.invalid", http_client=http, max_retries=0
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydantic complains about leniently built models; schemas judge those
                if response.events is not None:
                    with client.messages.stream(**params, extra_body=extra or None) as stream:
                        message = stream.get_final_message()
                else:
                    message = client.messages.create(**params, extra_body=extra or None)
            result = SdkReplay(message.to_dict())
        except Exception as exc:  # anything the SDK raises is what a client would see
            result = SdkReplay(None, f"{type(exc).__name__}: {exc}")
    view.memo["sdk"] = result
    return result
