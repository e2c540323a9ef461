"""The shot inputs shared by M3DDM Outpaint Canvas, Coarse-to-Fine and Outpaint Video, and their resolution to
a list of cuts (first frames of new shots)."""
from __future__ import annotations

import logging
from typing import Iterable

from comfy_api.latest import io

from ..m3ddm_core import ShotError, detect_cuts, parse_cuts

from .validation import node_error, node_errors

log = logging.getLogger("M3DDM")

SHOTS = ["none", "detect", "list"]
FROM_CANVAS = "canvas"


def shot_inputs(from_canvas: bool = False) -> list:
    """``shots`` (how the video is split into shots) and ``cuts`` (the list, when given by hand).
    ``from_canvas`` adds the option (and default) of following the connected canvas."""
    options = [FROM_CANVAS, *SHOTS] if from_canvas else SHOTS
    canvas_tip = " canvas: as decided on the M3DDM Outpaint Canvas (its preview shows the cuts)." if from_canvas else ""
    return [
        io.Combo.Input("shots", options=options, default=options[0],
                       tooltip="Edited videos: outpaint each shot as its own video (own global frames and key frames, "
                               "nothing carried across a cut). none: one shot. detect: find the hard cuts "
                               "(PySceneDetect). list: the cuts given below." + canvas_tip),
        io.String.Input("cuts", default="",
                        tooltip="shots = list: the first frame of every new shot, counted from 0 in the frames this "
                                "node outpaints, e.g. 120, 348."),
    ]


def resolve_cuts(shots: str, cuts: str, frames: Iterable, num_frames: int, node: str) -> list[int]:
    """The cuts of ``frames`` (``num_frames`` of them) as the inputs ask: none, detected, or parsed from ``cuts``.
    ``frames`` is only read for ``detect``."""
    if shots == "none":
        return []
    with node_errors(node, ShotError, hint=". Fix the cuts list (first frames of new shots, e.g. 120, 348)"):
        if shots == "list":
            found = parse_cuts(cuts, num_frames)
        elif shots == "detect":
            found = detect_cuts(frames)
        else:
            raise node_error(node, f"shots {shots!r} is unknown; choose one of {', '.join(SHOTS)}")
    log.info("[%s] %d shot(s); cuts at frames %s", node, len(found) + 1, found or "none")
    return found
