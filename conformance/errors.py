"""Errors a user can cause, which the CLI turns into one clear line and exit status 2."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad arguments, an unreadable file or an unreachable server: say what and how to fix it."""
