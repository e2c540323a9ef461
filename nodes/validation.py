"""What ComfyUI shows when an input is wrong: core errors named after the node, and the queue-time check of the
text inputs (the core's :func:`check_inputs` plus the nodes' own combos and frame lists)."""
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


def text_input_problems(aspect_ratio=None, target=None, targets=(), shots=None, shot_options=(), cuts=None,
                        frame_indexes=None) -> bool | str:
    """``True``, or what is wrong with the text inputs that can be checked before any frame exists: ComfyUI calls
    a node's ``validate_inputs`` when the prompt is queued, so a typo fails before any upstream node runs. Inputs
    fed by a link arrive as None and are checked when the node runs. ComfyUI leaves the combo inputs a
    ``validate_inputs`` names (``target``, ``shots``) to it: they are checked here against ``targets`` and
    ``shot_options``."""
    problems = []
    for name, value, options in (("target", target, targets), ("shots", shots, shot_options)):
        if value is not None and options and value not in options:
            problems.append(f"{name}: {value!r} is not one of {', '.join(options)}")
    problems += check_inputs(ratio=aspect_ratio if isinstance(aspect_ratio, str) and target in (None, "aspect ratio")
                             else None, cuts=cuts if isinstance(cuts, str) and shots == "list" else None,
                             frame_indexes=frame_indexes if isinstance(frame_indexes, str) else None)
    return "; ".join(problems) or True
