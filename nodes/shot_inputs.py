"""The shot inputs shared by M3DDM Outpaint Canvas, Coarse-to-Fine and Outpaint Video, and their resolution to
a list of cuts (first frames of new shots)."""
from __future__ import annotations

import logging
from typing import Iterable

from comfy_api.latest import io

from ..m3ddm_core import CHOICES, Edit, resolve_edit

from .validation import node_errors

log = logging.getLogger("M3DDM")

SHOTS = list(CHOICES.shots)
FROM_CANVAS = "canvas"


def shot_inputs(from_canvas: bool = False) -> list:
    """``shots`` (how the video is split into shots) and ``cuts`` (the list, when given by hand).
    ``from_canvas`` adds the option (and default) of following the connected canvas."""
    options = [FROM_CANVAS, *SHOTS] if from_canvas else SHOTS
    canvas_tip = (" canvas: as decided on the M3DDM Outpaint Canvas (its preview shows the cuts, its setups who "
                  "shares a border); with detect or list here, returning set-ups are grouped automatically."
                  if from_canvas else "")
    return [
        io.Combo.Input("shots", options=options, default=options[0],
                       tooltip="Edited videos: outpaint each shot as its own video (own global frames and key frames, "
                               "nothing carried across a cut). none: one shot. detect: find the hard cuts "
                               "(PySceneDetect), dissolves and fades (a dissolve splits its shots at its middle; the "
                               "borders of both are blended with the picture). list: the cuts given below."
                               + canvas_tip),
        io.String.Input("cuts", default="",
                        tooltip="shots = list: the first frame of every new shot, counted from 0 in the frames this "
                                "node outpaints, e.g. 120, 348."),
    ]


def setups_input():
    """How shots of one camera set-up are grouped (Outpaint Canvas and Outpaint Video; the last widget, so that
    workflows saved before it keep their widget values)."""
    return io.String.Input("setups", default="auto", optional=True,
                           tooltip="With shots, returning camera set-ups (an interview's A, B, A cameras): shots of "
                                   "one set-up share their global frames and seed, so the border invented for a room "
                                   "stays the same when the edit comes back to it. auto: grouped by how alike the "
                                   "shots look. none: every shot its own. Or one label per shot to split or join "
                                   "them by hand, e.g. A B A C.")


def find_edit(shots: str, cuts: str, setups: str, frames: Iterable, num_frames: int, node: str) -> Edit:
    """The cuts, transitions and set-ups the inputs ask for (the core's :func:`resolve_edit`: ``frames`` read at
    most once), logged; errors named after ``node``."""
    with node_errors(node):
        edit = resolve_edit(shots, cuts, setups, frames, num_frames)
    for note in edit.notes() if shots != "none" else ():
        log.info("[%s] %s", node, note)
    return edit
