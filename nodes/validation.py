"""What ComfyUI shows when an input is wrong: core errors named after the node, and the queue-time check of the
text inputs (the core's :func:`check_inputs` plus the nodes' own combos and frame lists)."""
from __future__ import annotations

from contextlib import contextmanager
from itertools import chain, islice
from typing import Iterator

from ..m3ddm_core import CLIP_FRAMES, UNKNOWN_LENGTH, check_inputs


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


def parse_frame_indexes(text: str, num_frames: int, node: str) -> list[int]:
    """``"0-15"``, ``"0,2,4"`` or ``"32-47"`` -> 16 frame indexes (fewer are padded with the last, as the
    official code pads clips)."""
    out: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            a, b = (int(x) for x in part.split("-", 1)) if "-" in part else (int(part), int(part))
        except ValueError:
            raise node_error(node, f"frame indexes {text!r} must look like 0-15 or 0,2,4,6") from None
        outside = list(islice(chain(range(a, min(b, -1) + 1), range(max(a, num_frames), b + 1)), 5))
        if outside:
            raise node_error(node, f"frame indexes {outside} are outside the video (0..{num_frames - 1})")
        if len(out) + b - a + 1 > CLIP_FRAMES:  # refused before a long range is listed
            raise node_error(node, f"{len(out) + b - a + 1} frame indexes given; one clip holds at most "
                                   f"{CLIP_FRAMES} (use M3DDM Coarse-to-Fine Outpaint for whole videos)")
        out.extend(range(a, b + 1))
    if not out:
        out = list(range(min(CLIP_FRAMES, num_frames)))
    return out + [out[-1]] * (CLIP_FRAMES - len(out))


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
                             else None, cuts=cuts if isinstance(cuts, str) and shots == "list" else None)
    if isinstance(frame_indexes, str):
        try:
            parse_frame_indexes(frame_indexes, UNKNOWN_LENGTH, "")
        except ValueError as exc:
            problems.append(f"frame_indexes: {str(exc).removeprefix('[] ')}")
    return "; ".join(problems) or True
