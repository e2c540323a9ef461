"""What a user may ask of a run, checked in one place: every front-end (the nodes' queue-time validation, the batch
command's arguments, :func:`.outpaint.prepare`) calls :func:`check_inputs` with what it knows so far, and the
nodes advertise the limits here in their schemas instead of restating them."""
from __future__ import annotations

from typing import Optional

from .canvas import CanvasError, check_working_size, parse_ratio_list
from .schedule import SCHEDULES, Strides, parse_strides
from .shots import ShotError, parse_cuts

# A length no video reaches: where the frames are not known yet (a prompt being queued), only the form of an
# input that counts frames is checked.
UNKNOWN_LENGTH = 2 ** 31


def check_inputs(*, working_size: Optional[int] = None, canvas_mode: str = "official", ratio: Optional[str] = None,
                 cuts: Optional[str] = None, num_frames: Optional[int] = None, strides: Optional[Strides] = None,
                 schedule: Optional[str] = None) -> list[str]:
    """The problems of these inputs, one message each, led by the input's name (``"working_size: ..."``); empty:
    all fine. Inputs not known yet are None; ``cuts`` (text: first frames of new shots) are checked against
    ``num_frames`` when it is known."""
    problems = []
    if working_size is not None:
        try:
            check_working_size(working_size, canvas_mode)
        except CanvasError as exc:
            problems.append(f"working_size: {exc}")
    if ratio is not None:
        try:
            parse_ratio_list(ratio)
        except CanvasError as exc:
            problems.append(f"aspect_ratio: {exc}")
    if cuts is not None:
        try:
            parse_cuts(cuts, UNKNOWN_LENGTH if num_frames is None else num_frames)
        except ShotError as exc:
            problems.append(f"cuts: {exc}; give the first frames of new shots, e.g. 120, 348")
    if strides is not None:
        try:
            parse_strides(strides, UNKNOWN_LENGTH if num_frames is None else num_frames)
        except ValueError as exc:
            problems.append(f"strides: {exc}")
    if schedule is not None and schedule not in SCHEDULES:
        problems.append(f"schedule: {schedule!r} is unknown; use {' or '.join(SCHEDULES)}")
    return problems
