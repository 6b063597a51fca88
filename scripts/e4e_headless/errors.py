"""Errors that carry a one-line message for the user."""

from __future__ import annotations


class RunError(Exception):
    """An error with a one-line message for the user."""


class ServerDown(RunError):
    """The server cannot be reached: it takes no more jobs."""


class Refused(RunError):
    """ComfyUI refused the workflow (node errors): retrying on the same server would not help."""


class Cancelled(RunError):
    """The user pressed Ctrl-C: the runs were stopped (on the servers too)."""


def last_line(text) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1].strip() if lines else ""


def refused_message(body: dict, who: str = "the server") -> str:
    """One line from ComfyUI's answer to an invalid prompt (``POST /prompt``'s 400 body, or what
    ``execution.validate_prompt`` returns): each failing node's id, class and messages."""
    parts = []
    for node_id, entry in (body.get("node_errors") or {}).items():
        msgs = []
        for err in entry.get("errors", []):
            msg = err.get("message", "error")
            if err.get("details"):
                msg += f": {err['details']}"
            msgs.append(msg)
        parts.append(f"node {node_id} ({entry.get('class_type', '?')}): {'; '.join(msgs) or 'invalid'}")
    if not parts:
        err = body.get("error") or {}
        text = err.get("message", "invalid prompt") if isinstance(err, dict) else str(err)
        details = err.get("details") if isinstance(err, dict) else ""
        parts.append(text + (f": {details}" if details and details != text else ""))
    return f"{who} refused the workflow: " + " | ".join(parts)


def failure_message(data: dict, where: str = "") -> str:
    """One line from an ``execution_error`` message (websocket, history, or the executor's status)."""
    return (f"node {data.get('node_id')} ({data.get('node_type')}) failed{where}: "
            f"{data.get('exception_type', 'error')}: {last_line(data.get('exception_message'))}")
