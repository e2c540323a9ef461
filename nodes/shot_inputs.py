"""The shot inputs shared by M3DDM Outpaint Canvas, Coarse-to-Fine and Outpaint Video, and their resolution to
a list of cuts (first frames of new shots)."""
from __future__ import annotations

import logging
from typing import Iterable

from ..m3ddm_core import CHOICES, Edit, resolve_edit

from .validation import node_errors
from .widgets import widget

log = logging.getLogger("M3DDM")

FROM_CANVAS = "canvas"
CANVAS_TIP = ("canvas: as decided on the M3DDM Outpaint Canvas (its preview shows the cuts, its setups who shares a "
              "border); with detect or list here, returning set-ups are grouped automatically.")


def shot_inputs(from_canvas: bool = False) -> list:
    """``shots`` (how the video is split into shots) and ``cuts`` (the list, when given by hand).
    ``from_canvas`` adds the option (and default) of following the connected canvas."""
    shots = widget("shots", CANVAS_TIP, options=[FROM_CANVAS, *CHOICES.shots], default=FROM_CANVAS) if from_canvas \
        else widget("shots")
    return [shots, widget("cuts")]


def find_edit(shots: str, cuts: str, setups: str, frames: Iterable, num_frames: int, node: str) -> Edit:
    """The cuts, transitions and set-ups the inputs ask for (the core's :func:`resolve_edit`: ``frames`` read at
    most once), logged; errors named after ``node``."""
    with node_errors(node):
        edit = resolve_edit(shots, cuts, setups, frames, num_frames)
    for note in edit.notes() if shots != "none" else ():
        log.info("[%s] %s", node, note)
    return edit
