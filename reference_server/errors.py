"""Errors: the exception the handlers raise, and the JSON body of each surface (OpenAI, Anthropic, LM Studio native)."""

from __future__ import annotations

from typing import Any

__all__ = ["NATIVE_ERROR_TYPES", "ApiError", "anthropic_error_body", "error_body", "native_error_body"]


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


NATIVE_ERROR_TYPES = frozenset(
    {
        "invalid_request",
        "unknown",
        "mcp_connection_error",
        "plugin_connection_error",
        "not_implemented",
        "model_not_found",
        "job_not_found",
        "internal_error",
    }
)
"""The `error.type` values of LM Studio's native API (its streaming-events page lists them)."""


def _native_type(error: ApiError) -> str:
    if error.type in NATIVE_ERROR_TYPES:
        return error.type
    if error.code in ("model_not_found", "job_not_found"):
        return error.code
    if error.status == 501:
        return "not_implemented"
    return "internal_error" if error.status >= 500 else "invalid_request"


def native_error_body(error: ApiError) -> dict[str, Any]:
    """LM Studio's native envelope (/api/v1): {"error": {"type", "message", "code"?, "param"?}}.

    The type is the error's own when it is a native one (e.g. mcp_connection_error), else follows from its
    code and status: model_not_found, job_not_found, not_implemented (501), internal_error (5xx) or
    invalid_request. `code` and `param` appear only when set, as in LM Studio's own errors.
    """
    body: dict[str, Any] = {"type": _native_type(error), "message": error.message}
    if error.code is not None:
        body["code"] = error.code
    if error.param is not None:
        body["param"] = error.param
    return {"error": body}
