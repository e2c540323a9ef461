"""What a user may ask of a run, checked in one place: every front-end (the nodes' queue-time validation, the batch
command's arguments, :func:`.outpaint.prepare`) calls :func:`check_inputs` with what it knows so far; the limits
and choices it checks are :mod:`.parameters`', which the nodes' schemas and the batch command's options show."""
from __future__ import annotations

import logging
import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import chain, islice
from typing import Iterable, Optional, Sequence

from .canvas import CanvasError, check_working_size, parse_ratio_list
from .edits import EditReader
from .parameters import SHOT_MODES, Value, limit_problems
from .schedule import CLIP_FRAMES, Strides, parse_strides
from .shots import ShotError, parse_cuts
from .transitions import Transition, transition_at

log = logging.getLogger("M3DDM")

# A length no video reaches: where the frames are not known yet (a prompt being queued), only the form of an
# input that counts frames is checked.
UNKNOWN_LENGTH = 2 ** 31


def check_inputs(*, working_size: Optional[int] = None, canvas_mode: str = "official", ratio: Optional[str] = None,
                 cuts: Optional[str] = None, num_frames: Optional[int] = None, strides: Optional[Strides] = None,
                 schedule: Optional[str] = None, frame_indexes: Optional[str] = None, **settings: Value) -> list[str]:
    """The problems of these inputs, one message each, led by the input's name (``"working_size: ..."``); empty:
    all fine. Inputs not known yet are None; ``cuts`` (text: first frames of new shots) are checked against
    ``num_frames`` when it is known; ``settings``, any others of :data:`.parameters.PARAMETERS` (``steps=0``),
    against their options and limits."""
    problems = limit_problems(**settings)
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
    if schedule is not None:  # the catalogue's options, in this place of the list
        problems += limit_problems(schedule=schedule)
    if frame_indexes is not None:
        try:
            parse_frame_indexes(frame_indexes, num_frames)
        except ValueError as exc:
            problems.append(f"frame_indexes: {exc}")
    return problems


@dataclass(frozen=True)
class Edit:
    """How a video is cut, as the shot inputs decide it: ``cuts`` (first frames of new shots, each dissolve split at
    its middle), ``transitions`` (dissolves and fades: their borders are blended with the picture) and ``groups``
    (each shot's camera set-up, the index of its first shot; None: every shot its own)."""
    cuts: tuple[int, ...] = ()
    transitions: tuple[Transition, ...] = ()
    groups: Optional[tuple[int, ...]] = None

    @property
    def labels(self) -> str:
        """Each shot's set-up as a user writes them (``A B A``; :func:`parse_setups` reads it back)."""
        return setup_labels(self.groups if self.groups is not None else range(len(self.cuts) + 1))

    def caption(self, frame: int) -> str:
        """Frame ``frame``'s shot and set-up (``shot 2 B``), and the transition it is in (``dissolve 32-39``)."""
        shot = bisect_right(self.cuts, frame)
        t = transition_at(self.transitions, frame)
        return f"shot {shot + 1} {self.labels.split()[shot]}" + (f", {t.kind.replace('_', ' ')} {t.start}-"
                                                                  f"{t.end - 1}" if t else "")

    def notes(self) -> list[str]:
        """What was decided, a line each, for the log: the shots, each transition, the set-ups."""
        lines = [f"{len(self.cuts) + 1} shot(s); cuts at frames {list(self.cuts) or 'none'}"]
        lines += [f"{t.kind.replace('_', ' ')} at frames {t.start}-{t.end - 1}: borders blended with the picture"
                  for t in self.transitions]
        if self.groups is not None and len(self.groups) > 1:
            lines.append(f"camera set-ups of the {len(self.groups)} shots: {self.labels}")
        return lines

    def log(self, name: str) -> None:
        """Log :meth:`notes`, led by ``name`` (who asked: a node's id, a file's name)."""
        for note in self.notes():
            log.info("[%s] %s", name, note)


def resolve_edit(shots: str, cuts: str, setups: str, frames: Iterable, num_frames: int,
                 name: Optional[str] = None) -> Edit:
    """The :class:`Edit` the inputs ask for, ``frames`` (``num_frames`` of them) read at most once, and only where
    something is found in them. ``shots`` (:data:`SHOT_MODES`): none, detect (hard cuts, dissolves and fades,
    :class:`.edits.EditReader`) or list (the ``cuts`` text); ``setups`` (:func:`parse_setups`): auto groups the
    shots by their frames (with cuts only), none, or one label per shot. ShotError / ValueError say what is wrong.
    With ``name`` (who asks, in the log) and shots asked for, what was decided is logged (:meth:`Edit.notes`)."""
    if shots not in SHOT_MODES:
        raise ShotError(f"shots {shots!r} is unknown; choose one of {', '.join(SHOT_MODES)}")
    auto = parse_setups(setups) == "auto"
    given = parse_cuts(cuts, num_frames) if shots == "list" else [] if shots == "none" else None
    reader = EditReader(given, transitions=shots == "detect", groups=auto)
    if given is None or auto and given:
        for _ in reader.watching(frames):
            pass
    found = reader.cuts()
    groups = (reader.groups() if found else None) if auto else parse_setups(setups, len(found) + 1)
    edit = Edit(tuple(found), tuple(reader.transitions()), None if groups is None else tuple(groups))
    if name is not None and shots != "none":
        edit.log(name)
    return edit


def parse_setups(text: str, shots: Optional[int] = None):
    """Returning camera set-ups as a user gives them -> what :func:`.outpaint.prepare` takes as ``groups``:
    ``"auto"`` (grouped by their frames), ``"none"`` or empty -> None (every shot its own), or one label per shot
    (``"A B A C"``: shots 1 and 3 show one set-up) -> for each shot the first shot with its label
    (``[0, 1, 0, 3]``). ``shots`` None: the count is checked later. ValueError says what is wrong."""
    text = str(text).strip()
    if text.lower() in ("", "none"):
        return None
    if text.lower() == "auto":
        return "auto"
    labels = [t.upper() for t in re.split(r"[,;\s]+", text) if t]
    if shots is not None and len(labels) != shots:
        raise ValueError(f"setups {text!r} labels {len(labels)} shot(s), the video has {shots}: give one label per "
                         "shot (e.g. A B A), auto or none")
    first: dict[str, int] = {}
    return [first.setdefault(label, shot) for shot, label in enumerate(labels)]


def setup_labels(groups) -> str:
    """``[0, 1, 0, 3]`` (a group per shot) -> ``"A B A C"``, the form :func:`parse_setups` reads back."""
    names: dict[int, str] = {}
    for g in groups:
        names.setdefault(int(g), chr(ord("A") + len(names)) if len(names) < 26 else f"S{len(names) + 1}")
    return " ".join(names[int(g)] for g in groups)


def shot_summary(plan, key_frames: Sequence[int] = ()) -> str:
    """One line per shot of a :class:`.plan.VideoPlan`: its frames, camera set-up (:func:`setup_labels`) and the
    ``key_frames`` in it, e.g. ``shot 2 B: frames 40-72, key frames 40, 55, 70, 72``."""
    labels = setup_labels(plan.groups).split()
    lines = []
    for k, (start, end) in enumerate(plan.shots):
        keys = [f for f in key_frames if start <= f < end]
        lines.append(f"shot {k + 1} {labels[k]}: frames {start}-{end - 1}"
                     + (f", key frames {', '.join(map(str, keys))}" if keys else ""))
    return "\n".join(lines)


def parse_frame_indexes(text: str, num_frames: Optional[int] = None) -> list[int]:
    """A hand-picked clip: ``"0-15"``, ``"0,2,4"`` or ``"32-47"`` -> 16 frame indexes (fewer are padded with the
    last, as the official code pads clips; empty: the first 16 frames). ``num_frames`` None: only the form is
    checked (the frames are not known yet). ValueError says what is wrong."""
    n = UNKNOWN_LENGTH if num_frames is None else num_frames
    out: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            a, b = (int(x) for x in part.split("-", 1)) if "-" in part else (int(part), int(part))
        except ValueError:
            raise ValueError(f"frame indexes {text!r} must look like 0-15 or 0,2,4,6") from None
        outside = list(islice(chain(range(a, min(b, -1) + 1), range(max(a, n), b + 1)), 5))
        if outside and num_frames is not None:
            raise ValueError(f"frame indexes {outside} are outside the video (0..{n - 1})")
        if len(out) + b - a + 1 > CLIP_FRAMES:  # refused before a long range is listed
            raise ValueError(f"{len(out) + b - a + 1} frame indexes given; one clip holds at most {CLIP_FRAMES} "
                             "(whole videos are outpainted coarse to fine)")
        out.extend(range(a, b + 1))
    if not out:
        out = list(range(min(CLIP_FRAMES, n)))
    return out + [out[-1]] * (CLIP_FRAMES - len(out))


def parse_shot_seeds(text: str, shots: int) -> dict[int, int]:
    """Re-rolled shots: ``"2:1234, 3:7"`` (shot numbers from 1, as a user counts) -> ``{1: 1234, 2: 7}`` (shot
    indexes from 0, as :func:`.plan.plan_video` takes them)."""
    out = {}
    for part in re.split(r"[,;\s]+", text.strip()):
        if not part:
            continue
        m = re.fullmatch(r"(\d+):(\d+)", part)
        if m is None:
            raise ValueError(f"shot_seeds {text!r}: write shot:seed pairs such as 2:1234, 3:7")
        shot, seed = int(m[1]), int(m[2])
        if not 1 <= shot <= shots:
            raise ValueError(f"shot_seeds: shot {shot} does not exist (this video has {shots} shot(s))")
        out[shot - 1] = seed
    return out
