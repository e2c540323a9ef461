"""The shot inputs shared by M3DDM Outpaint Canvas, Coarse-to-Fine and Outpaint Video, and their resolution to
a list of cuts (first frames of new shots)."""
from __future__ import annotations

import logging
from typing import Iterable

from comfy_api.latest import io

from ..m3ddm_core import CHOICES, resolve_cuts

from .validation import node_errors

log = logging.getLogger("M3DDM")

SHOTS = list(CHOICES.shots)
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


def find_cuts(shots: str, cuts: str, frames: Iterable, num_frames: int, node: str) -> list[int]:
    """The cuts of ``frames`` (``num_frames`` of them) as the inputs ask (the core's :func:`resolve_cuts`), logged;
    ``frames`` is only read for ``detect``."""
    with node_errors(node, hint=". Fix the cuts list (first frames of new shots, e.g. 120, 348)" if shots == "list"
                     else ""):
        found = resolve_cuts(shots, cuts, frames, num_frames)
    if shots != "none":
        log.info("[%s] %d shot(s); cuts at frames %s", node, len(found) + 1, found or "none")
    return found
