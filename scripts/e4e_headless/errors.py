"""Errors that carry a one-line message for the user."""

from __future__ import annotations


class RunError(Exception):
    """An error with a one-line message for the user."""


class ServerDown(RunError):
    """The server cannot be reached: it takes no more jobs."""


class Refused(RunError):
    """The server refused the workflow (node errors): retrying on the same server would not help."""


def last_line(text) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1].strip() if lines else ""
