"""Per-request limits every wire adapter applies: body size, message count, output tokens, embedding batch."""

from __future__ import annotations

from dataclasses import dataclass

from reference_server.errors import ApiError

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; each limit has a `conformance serve` flag of the same name.

    The defaults let every ordinary client through (OpenAI's own embedding batch limit is 2048 inputs; the
    largest output limits of hosted models are around 128K tokens) while bounding what one request can cost.
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_messages: int = 4096
    max_output_tokens: int = 131_072
    max_embedding_inputs: int = 2048

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")

    def body_too_large(self, size: int) -> ApiError:
        return ApiError(
            413,
            f"The request body is larger than this server accepts ({size} > {self.max_body_bytes} bytes). "
            "Send less, or restart the server with a larger --max-body-bytes.",
            code="request_too_large",
        )

    def check_messages(self, count: int, *, param: str = "messages") -> None:
        if count > self.max_messages:
            raise ApiError.bad_request(
                f"The request has {count} messages; this server accepts at most {self.max_messages} "
                "(restart it with a larger --max-messages).",
                param=param,
                code="too_many_messages",
            )

    def output_tokens(self, requested: int | None, *, param: str = "max_tokens") -> int:
        """The most tokens a generation may produce: the request's own limit, checked against the ceiling."""
        if requested is None:
            return self.max_output_tokens
        if requested > self.max_output_tokens:
            raise ApiError.bad_request(
                f"{param} is {requested}; this server generates at most {self.max_output_tokens} tokens per "
                "request (ask for fewer, or restart it with a larger --max-output-tokens).",
                param=param,
                code="max_tokens_too_large",
            )
        return requested

    def check_embedding_inputs(self, count: int, *, param: str = "input") -> None:
        if count > self.max_embedding_inputs:
            raise ApiError.bad_request(
                f"input has {count} items; this server embeds at most {self.max_embedding_inputs} per request "
                "(send them in smaller batches, or restart it with a larger --max-embedding-inputs).",
                param=param,
                code="too_many_inputs",
            )
