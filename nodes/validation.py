"""What ComfyUI shows when an input is wrong: core errors named after the node, and the queue-time check of a text
input (the core's :func:`check_inputs`)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..m3ddm_core import check_inputs


def node_error(node: str, message: str) -> ValueError:
    return ValueError(f"[{node}] {message}")


@contextmanager
def node_errors(node: str, *kinds: type[BaseException], prefix: str = "", hint: str = "") -> Iterator[None]:
    """Inside it, a core error (``kinds``, default ValueError: bad canvases, schedules, cuts, files) becomes the
    error ComfyUI shows, named after ``node``: ``[node] {prefix}{error}{hint}`` (``hint``: what to change). An error
    that already names the node passes unchanged."""
    try:
        yield
    except kinds or (ValueError,) as exc:
        if str(exc).startswith(f"[{node}]"):
            raise
        raise node_error(node, f"{prefix}{exc}{hint}") from None


def oom_hint(exc: BaseException, node: str, during: str, fix: str) -> BaseException:
    """The same out-of-memory exception type (so ComfyUI still frees memory), named after ``node``, with ``fix``."""
    msg = f"[{node}] out of GPU memory while {during} ({exc}). {fix}"
    try:
        return type(exc)(msg)
    except Exception:  # an exception type that takes other arguments
        return RuntimeError(msg)


CHECKED_AT_QUEUE = {"aspect_ratio": "ratio", "cuts": "cuts", "frame_indexes": "frame_indexes"}  # -> check_inputs


def text_input_problem(name: str, value) -> bool | str:
    """``True``, or what the core's :func:`check_inputs` finds wrong with the text input ``name``, for a node's
    ``validate_inputs``: a typo fails when the prompt is queued, before any upstream node runs. ComfyUI files the
    message under every input that method takes, so each takes just one; a linked input (None here) and what
    needs the frames (a cut past the end) are checked when the node runs."""
    if not isinstance(value, str):
        return True
    problems = check_inputs(**{CHECKED_AT_QUEUE[name]: value})
    return problems[0].removeprefix(f"{name}: ") if problems else True
