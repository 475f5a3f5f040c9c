"""OpenAI-shaped errors: the exception the handlers raise and the JSON body every error response carries."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "anthropic_error_body", "error_body"]


def error_body(message: str, *, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error object: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ApiError(Exception):
    """An error answered with an OpenAI error object and an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type_=self.type, param=self.param, code=self.code)

    @classmethod
    def bad_request(cls, message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
        return cls(400, message, param=param, code=code)

    @classmethod
    def model_not_found(cls, model: str, *, param: str = "model") -> ApiError:
        return cls(404, f"The model {model!r} does not exist or is not loaded.", param=param, code="model_not_found")

    @classmethod
    def context_length_exceeded(cls, tokens: int, n_ctx: int, *, param: str = "messages") -> ApiError:
        return cls(
            400,
            f"This model's maximum context length is {n_ctx} tokens, but the request has {tokens} prompt tokens "
            f"({tokens} > {n_ctx - 1}, one token must stay free for the reply). Shorten the input or restart the "
            "server with a larger --ctx.",
            param=param,
            code="context_length_exceeded",
        )


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error envelope, {"type": "error", "error": {"type", "message"}}, its type from the status."""
    kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}
