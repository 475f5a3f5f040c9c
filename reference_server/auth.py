"""API-key authentication: the keys a server accepts, where they come from, and the FastAPI dependency."""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from fastapi import Request

from reference_server.errors import ApiError

__all__ = ["API_KEY_ENV", "ApiKeys", "authorize", "load_api_keys"]

API_KEY_ENV = "CONFORMANCE_API_KEY"


class ApiKeys:
    """The tokens a server accepts (none: no authentication); compared in constant time."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = tuple(key.encode() for key in keys)
        if any(not key for key in self._keys):
            raise ValueError("an API key must not be empty: it would let any client in")

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def accepts(self, token: str) -> bool:
        """Whether token is one of the keys; every key is compared, so the time does not tell which matched."""
        given = token.encode()
        return sum(hmac.compare_digest(given, key) for key in self._keys) > 0


def load_api_keys(
    keys: Sequence[str] = (), key_file: str | None = None, *, env: dict[str, str] | None = None
) -> ApiKeys:
    """The keys of `conformance serve`: each --api-key, each line of --api-key-file, and $CONFORMANCE_API_KEY.

    ValueError, with a message for the user, on an empty key or an unreadable or empty file.
    """
    environment = os.environ if env is None else env
    found: list[str] = []
    for key in keys:
        if not key.strip():
            raise ValueError("--api-key is empty: give the key (or leave the option out to serve without auth)")
        found.append(key.strip())
    if key_file is not None:
        try:
            lines = Path(key_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read --api-key-file {key_file!r}: {exc}") from exc
        from_file = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not from_file:
            raise ValueError(f"--api-key-file {key_file!r} holds no key (one key per line; # starts a comment)")
        found.extend(from_file)
    if API_KEY_ENV in environment:
        value = environment[API_KEY_ENV].strip()
        if not value:
            raise ValueError(f"${API_KEY_ENV} is set but empty: give it a key, or unset it to serve without auth")
        found.append(value)
    return ApiKeys(found)


async def authorize(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries one of the app's keys (Bearer or x-api-key)."""
    keys: ApiKeys = request.app.state.api_keys
    if not keys.required:
        return
    bearer = request.headers.get("authorization", "")
    token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else request.headers.get("x-api-key")
    if token is None:
        raise ApiError(401, "Missing API key: send Authorization: Bearer <key> or x-api-key.", code="invalid_api_key")
    if not token or not keys.accepts(token):
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
