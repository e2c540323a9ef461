"""Constructed edits with known cuts, for the cut-detection tests and ``benchmarks/cuts.py``.

Every shot is a camera moving over a large procedural picture (smooth noise at several scales around a palette
colour, with a few soft blobs standing in for objects), seen through a ``W`` x ``H`` window with sensor noise. The
edit's true cuts are known because the edit is assembled from the shots: ``Edit.cuts`` are the first frames of
every new shot, ``Edit.transitions`` the ``(first, last)`` frames of every dissolve or fade (one transition each),
``Edit.gradual`` the same as :class:`Gradual` parts (a fade is a fade out and a fade in) with the true share of the
incoming picture in every blended frame, ``Edit.groups`` the camera set-up of every shot (interview edits).
All frames are ``[H, W, 3]`` uint8 RGB; everything is seeded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import cv2
import numpy as np

H, W = 90, 160
NOISE = 3.0  # sensor noise (std, 0-255)

Path = Callable[[int], tuple[float, float, float, float]]  # frame i -> camera x, y (px), angle (deg), blur (px)


class Gradual(NamedTuple):
    """A true gradual transition: frames ``start`` .. ``end - 1`` blended; ``weights[k]``: the share of the
    incoming picture (black for a fade out) in frame ``start + k``, 0..1."""
    start: int
    end: int
    kind: str  # "dissolve", "fade_out" or "fade_in"
    weights: tuple[float, ...]


@dataclass
class Edit:
    name: str
    category: str
    frames: list[np.ndarray]
    cuts: list[int] = field(default_factory=list)
    transitions: list[tuple[int, int]] = field(default_factory=list)
    gradual: list[Gradual] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # per shot: the index of the first shot of its set-up


def picture(seed: int, colour: Sequence[float], size: tuple[int, int] = (3 * H, 6 * W),
            contrast: float = 30.0) -> np.ndarray:
    """``[size, 3]`` float32 RGB: noise at three scales around ``colour`` plus soft blobs (structure at every scale,
    as in natural footage; the fine scale is what makes a fast pan change every pixel)."""
    rng = np.random.default_rng(seed)
    tex = np.zeros((*size, 1), np.float32)
    for sigma, weight in ((1.5, 0.5), (5.0, 1.0), (16.0, 1.0)):  # mostly light and shade, a little colour
        layer = cv2.GaussianBlur(rng.standard_normal(size, np.float32), (0, 0), sigma)[..., None]
        tex = tex + weight * layer / layer.std()
    tint = cv2.GaussianBlur(rng.standard_normal((*size, 3), np.float32), (0, 0), 8.0)
    tex = tex / tex.std() + 0.3 * tint / tint.std()
    img = np.float32(colour) + tex * contrast
    for _ in range(size[1] // 40):  # objects: blobs of a shifted colour (antialiased edges)
        centre = (int(rng.integers(size[1])), int(rng.integers(size[0])))
        axes = (int(rng.integers(6, 30)), int(rng.integers(6, 30)))
        shade = (np.float32(colour) + rng.normal(0, 50, 3)).tolist()
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, shade, -1, cv2.LINE_AA)
    return img


def film(pic: np.ndarray, path: Path, n: int, seed: int, zoom: float = 1.0,
         light: Callable[[int], tuple[float, float]] = lambda i: (1.0, 0.0)) -> list[np.ndarray]:
    """``n`` frames of a camera following ``path`` over ``pic`` (wrapping around it), with motion blur along the
    pan and fresh sensor noise every frame; ``zoom`` > 1 narrows the view, ``light(i)`` = (gain, offset) of the
    picture in frame ``i`` (a lighting change)."""
    rng = np.random.default_rng(seed)
    ph, pw = pic.shape[:2]
    frames = []
    for i in range(n):
        x, y, angle, blur = path(i)
        # frame pixel -> picture pixel: turned by angle about the frame's centre, moved by (x, y); the picture tiles
        m = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0 / zoom)
        m[:, 2] += (x % pw, y % ph)
        frame = cv2.warpAffine(pic, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_WRAP)
        if blur >= 2:
            k = int(round(blur))
            frame = cv2.blur(frame, (k, 1))
        gain, offset = light(i)
        if (gain, offset) != (1.0, 0.0):
            frame = frame * gain + offset
        frame = frame + rng.normal(0, NOISE, frame.shape).astype(np.float32)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def still(drift: float = 1.0) -> Path:
    """A camera on a tripod: a drift of ``drift`` px a frame back and forth (no jump)."""
    return lambda i: (drift * min(i % 32, 32 - i % 32), 0.0, 0.0, 0.0)


def pan(speed: float, vertical: float = 0.0, start: float = 0.0) -> Path:
    """A steady pan of ``speed`` x the frame width per frame (0.1: across the frame in 10 frames), blurred as a
    1/60 s shutter at 30 fps would (half the travel)."""
    return lambda i: (start + speed * W * i, vertical * H * i, 0.0, 0.5 * abs(speed) * W)


def whip(peak: float = 0.35, frames: int = 12, calm: int = 10) -> Path:
    """Still for ``calm`` frames, a whip pan over ``frames`` frames (speed rising to ``peak`` x the width a frame
    and falling, heavy motion blur), still again."""
    speeds = [0.0] * calm + [peak * np.sin(np.pi * (k + 0.5) / frames) for k in range(frames)] + [0.0] * 200
    xs = np.cumsum([0.0] + speeds)
    return lambda i: (float(xs[i]), 0.0, 0.0, float(speeds[i]) * W)


def handheld(seed: int, shake: float = 4.0, turn: float = 0.3) -> Path:
    """A handheld camera: a jittery random walk of up to ``shake`` px and ``turn`` degrees a frame."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 1, (400, 3)) * (shake, shake, turn)
    pose = np.cumsum(steps, 0) * 0.5 + steps  # drift plus jitter
    return lambda i: (float(pose[i, 0]), float(pose[i, 1]), float(pose[i, 2]), 0.0)


def flash(frames: list[np.ndarray], at: int, kind: str = "white", length: int = 1) -> list[np.ndarray]:
    """``frames`` with a ``length``-frame flash from ``at``: a white frame or the picture lit up (+90, then less)."""
    out = list(frames)
    for k in range(length):
        if kind == "white":
            out[at + k] = np.full_like(frames[at + k], 250)
        else:
            out[at + k] = np.clip(frames[at + k].astype(np.int16) + 90 // (k + 1), 0, 255).astype(np.uint8)
    return out


def blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return np.clip(a.astype(np.float32) * (1 - t) + b.astype(np.float32) * t + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Shot:
    pic: int  # seed of the picture
    colour: Sequence[float]
    path: Path
    n: int


def assemble(name: str, category: str, shots: Sequence[Shot], dissolve: int = 0, fade: int = 0,
             black: int = 0) -> Edit:
    """Shots one after the other: hard cuts, or dissolves of ``dissolve`` frames (shot A's last frames blended into
    shot B's first), or fades of ``fade`` frames to black and back (``black`` frames of black between the fade out
    and the fade in). Ground truth from the assembly."""
    frames: list[np.ndarray] = []
    edit = Edit(name, category, frames)
    for k, shot in enumerate(shots):
        shot_frames = film(picture(shot.pic, shot.colour), shot.path, shot.n, seed=1000 + shot.pic)
        if k and dissolve:
            start = len(frames) - dissolve
            weights = tuple((j + 1) / (dissolve + 1) for j in range(dissolve))
            for j in range(dissolve):
                frames[start + j] = blend(frames[start + j], shot_frames[j], weights[j])
            edit.transitions.append((start, start + dissolve - 1))
            edit.gradual.append(Gradual(start, start + dissolve, "dissolve", weights))
            shot_frames = shot_frames[dissolve:]
        elif k and fade:
            half = fade // 2
            start = len(frames) - half
            weights = tuple((j + 1) / (half + 1) for j in range(half))
            for j in range(half):
                frames[start + j] = blend(frames[start + j], np.zeros_like(frames[0]), weights[j])
                shot_frames[j] = blend(np.zeros_like(frames[0]), shot_frames[j], weights[j])
            # with a hold of black the fade in starts after it (the hold: frames of no shot, pure black)
            frames += [np.zeros_like(frames[0])] * black
            edit.transitions.append((start, start + 2 * half + black - 1))
            edit.gradual.append(Gradual(start, start + half, "fade_out", weights))
            edit.gradual.append(Gradual(start + half + black, start + 2 * half + black, "fade_in", weights))
        elif k:
            edit.cuts.append(len(frames))
        frames += shot_frames
    return edit


GREY, GREY2, WARM, WARM2 = (120, 120, 120), (128, 124, 118), (196, 138, 92), (204, 146, 100)
BLUE, GREEN = (40, 90, 200), (90, 150, 60)


def hard_cut_edits(seed: int = 0) -> list[Edit]:
    """Hard cuts between calm shots of one palette, into motion, out of motion and between motions."""
    s = 10 * seed
    return [
        assemble(f"calm, similar palette {seed}", "calm cuts",
                 [Shot(s + 1, GREY, still(), 30), Shot(s + 2, GREY2, still(), 30), Shot(s + 3, GREY, still(), 30)]),
        assemble(f"calm to fast pan {seed}", "cut into motion",
                 [Shot(s + 1, WARM, still(), 30), Shot(s + 2, WARM2, still(), 30), Shot(s + 3, WARM, pan(0.15), 40)]),
        assemble(f"still to whip {seed}", "cut into motion",
                 [Shot(s + 4, GREY, still(), 30), Shot(s + 5, GREY2, pan(-0.25, 0.05), 30)]),
        assemble(f"fast pan to calm {seed}", "cut out of motion",
                 [Shot(s + 6, GREEN, pan(0.2), 30), Shot(s + 7, GREEN, still(), 30), Shot(s + 8, BLUE, pan(0.1), 30)]),
        assemble(f"pan to pan {seed}", "motion to motion",
                 [Shot(s + 1, WARM, pan(0.12), 30), Shot(s + 2, WARM2, pan(-0.18, 0.03), 30),
                  Shot(s + 3, WARM, handheld(s), 30)]),
    ]


def short_shot_edits(seed: int = 0) -> list[Edit]:
    """4-frame shots between longer ones (a music video's quick cutting), calm and in motion."""
    s = 10 * seed + 100
    return [
        assemble(f"4-frame shots {seed}", "short shots",
                 [Shot(s + 1, GREY, still(), 20), Shot(s + 2, BLUE, still(), 4), Shot(s + 3, GREY2, still(), 4),
                  Shot(s + 4, GREEN, pan(0.1), 4), Shot(s + 5, GREY, still(), 20)]),
        assemble(f"4-frame shots in motion {seed}", "short shots",
                 [Shot(s + 6, WARM, pan(0.12), 20), Shot(s + 7, WARM2, pan(-0.15), 4), Shot(s + 8, WARM, still(), 4),
                  Shot(s + 9, WARM2, handheld(s), 20)]),
    ]


def flash_edits(seed: int = 0) -> list[Edit]:
    """Flashes of 1-3 frames inside calm and moving shots (no cut), and one before a real cut."""
    s = 10 * seed + 200
    calm = film(picture(s + 1, GREY), still(), 60, s)
    moving = film(picture(s + 2, WARM), pan(0.08), 60, s)
    edits = [Edit(f"{kind} flash x{n} {where} {seed}", "flashes", flash(frames, 25, kind, n))
             for where, frames in (("calm", calm), ("pan", moving)) for kind in ("white", "lit") for n in (1, 2, 3)]
    cut = assemble(f"flash then cut {seed}", "flashes", [Shot(s + 3, GREY, still(), 30), Shot(s + 4, BLUE, still(), 30)])
    cut.frames[:] = flash(cut.frames, 20, "white", 2)
    return edits + [cut]


def motion_edits(seed: int = 0) -> list[Edit]:
    """One shot each, no cut: fast pans (10-25% of the width a frame), still then a pan at full speed, whip pans,
    handheld shake."""
    s = 10 * seed + 300
    starting = pan(0.15)
    return [
        Edit(f"fast pan 0.1 {seed}", "pans (no cut)", film(picture(s + 1, GREEN), pan(0.1), 60, s)),
        Edit(f"fast pan 0.25 {seed}", "pans (no cut)", film(picture(s + 2, WARM), pan(0.25, 0.05), 60, s)),
        Edit(f"pan starts {seed}", "pans (no cut)",
             film(picture(s + 3, WARM), lambda i: starting(max(0, i - 20)), 60, s)),
        Edit(f"whip pan {seed}", "whip pans (no cut)", film(picture(s + 4, GREY), whip(0.35), 40, s)),
        Edit(f"whip pan fast {seed}", "whip pans (no cut)", film(picture(s + 5, BLUE), whip(0.5, 8), 40, s)),
        Edit(f"handheld {seed}", "handheld (no cut)", film(picture(s + 6, GREY), handheld(s), 60, s)),
        Edit(f"handheld strong {seed}", "handheld (no cut)", film(picture(s + 7, WARM), handheld(s + 1, 8, 0.5), 60, s)),
    ]


def transition_edits(seed: int = 0) -> list[Edit]:
    """Dissolves and fades: each one transition."""
    s = 10 * seed + 400
    return [
        assemble(f"dissolve 8 {seed}", "dissolves", [Shot(s + 1, GREY, still(), 40), Shot(s + 2, BLUE, still(), 40)],
                 dissolve=8),
        assemble(f"dissolve 20 moving {seed}", "dissolves",
                 [Shot(s + 3, WARM, pan(0.05), 45), Shot(s + 4, WARM2, still(), 45)], dissolve=20),
        assemble(f"fade 12 {seed}", "fades", [Shot(s + 5, GREY, still(), 40), Shot(s + 6, GREEN, pan(0.05), 40)],
                 fade=12),
    ]


def more_transition_edits(seed: int = 0) -> list[Edit]:
    """Gradual transitions beyond ``transition_edits``: a short dissolve of one palette, a dissolve while both shots
    move, and fades through a hold of black."""
    s = 10 * seed + 500
    return [
        assemble(f"dissolve 5 one palette {seed}", "dissolves",
                 [Shot(s + 1, GREY, still(), 30), Shot(s + 2, GREY2, still(), 30)], dissolve=5),
        assemble(f"dissolve 12 both moving {seed}", "dissolves",
                 [Shot(s + 3, GREEN, pan(0.03), 40), Shot(s + 4, BLUE, handheld(s, 2.0, 0.1), 40)], dissolve=12),
        assemble(f"fade 16 through black {seed}", "fades",
                 [Shot(s + 5, WARM, still(), 40), Shot(s + 6, GREY, still(), 40)], fade=16, black=6),
        assemble(f"fade 10 through black, moving {seed}", "fades",
                 [Shot(s + 7, BLUE, pan(0.04), 40), Shot(s + 8, WARM2, handheld(s + 1), 40)], fade=10, black=3),
    ]


def lighting_edits(seed: int = 0) -> list[Edit]:
    """One shot each, no transition: the light changes slowly (a cloud, a dimmer), down to 40% or up to 130% of
    the picture's brightness, or by an offset, on a still and a panning camera; none of it reaches black."""
    s = 10 * seed + 600

    def ramp(lo: float, hi: float, offset: float = 0.0, start: int = 10, length: int = 30):
        def light(i: int) -> tuple[float, float]:
            t = min(1.0, max(0.0, (i - start) / length))
            return lo + (hi - lo) * t, offset * t
        return light

    return [
        Edit(f"dimming to 40% {seed}", "lighting ramps (no transition)",
             film(picture(s + 1, GREY), still(), 60, s, light=ramp(1.0, 0.4))),
        Edit(f"brightening {seed}", "lighting ramps (no transition)",
             film(picture(s + 2, BLUE), still(), 60, s, light=ramp(0.8, 1.3, length=20))),
        Edit(f"light offset {seed}", "lighting ramps (no transition)",
             film(picture(s + 3, WARM), still(), 60, s, light=ramp(1.0, 1.0, offset=-60))),
        Edit(f"dimming in a pan {seed}", "lighting ramps (no transition)",
             film(picture(s + 4, GREEN), pan(0.05), 60, s, light=ramp(1.1, 0.45, length=25))),
    ]


def interview_edits(seed: int = 0) -> list[Edit]:
    """Interview-style edits of set-ups A, B, A', B', C with known groups ``[0, 1, 0, 1, 4]``: A' is A reframed
    (a few px over, zoomed 4-7%) under other light with new noise; B is another arrangement in A's palette (another
    picture of the same colour), C another set. The same with every set-up in one palette (``[0, 1, 0, 1, 4]``
    too: C is a third arrangement)."""
    s = 10 * seed + 700
    rng = np.random.default_rng(s)

    def setup(pic: int, colour, n: int, dx: float = 0.0, dy: float = 0.0, zoom: float = 1.0,
              light: tuple[float, float] = (1.0, 0.0), moving: bool = False) -> list[np.ndarray]:
        base = handheld(pic, 1.5, 0.1) if moving else still(0.5)
        path = lambda i: (lambda x, y, a, b: (x + dx, y + dy, a, b))(*base(i))  # noqa: E731
        return film(picture(pic, colour), path, n, seed=int(rng.integers(1 << 30)), zoom=zoom, light=lambda i: light)

    edits = []
    for name, colours in (("interview", (WARM, WARM, WARM, GREEN)), ("interview one palette", (WARM,) * 4)):
        a, b, c = s + 1, s + 2, s + 3
        shots = [setup(a, colours[0], 30),
                 setup(b, colours[1], 24, moving=True),
                 setup(a, colours[2], 28, dx=rng.uniform(3, 6), dy=rng.uniform(-4, 4),
                       zoom=rng.uniform(1.04, 1.07), light=(rng.uniform(0.85, 0.95), rng.uniform(-8, 8))),
                 setup(b, colours[1], 22, dx=rng.uniform(-6, -3), zoom=rng.uniform(0.94, 0.97),
                       light=(rng.uniform(1.05, 1.12), 0.0)),
                 setup(c, colours[3], 26)]
        frames = [f for shot in shots for f in shot]
        cuts = list(np.cumsum([len(shot) for shot in shots[:-1]]))
        edits.append(Edit(f"{name} {seed}", "interviews", frames, cuts=[int(c) for c in cuts],
                          groups=[0, 1, 0, 1, 4]))
        s += 5
    return edits


def moving_dissolve_edits(speeds: Sequence[float] = (0.03, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2),
                          lengths: Sequence[int] = (8, 12, 20)) -> list[Edit]:
    """Dissolves into and out of a steady pan of each of ``speeds`` (share of the width a frame) and ``lengths``
    (frames), over five pairs of palettes: a still shot of one, a pan over a picture of the other; and between two
    pans, the second the other way. Category ``"into a pan 0.05"``, ``"out of a pan 0.05"`` or ``"between pans
    0.05"``."""
    pairs = [(GREY, BLUE), (WARM, GREEN), (BLUE, WARM), (GREEN, GREY2), (WARM2, BLUE)]
    edits = []
    for speed in speeds:
        for length in lengths:
            for p, (still_colour, pan_colour) in enumerate(pairs):
                s = 900 + 7 * p + length
                calm, moving = Shot(s, still_colour, still(), 45), Shot(s + 1, pan_colour, pan(speed), 45)
                against = Shot(s, still_colour, pan(-speed), 45)
                for where, shots in (("into a pan", [calm, moving]), ("out of a pan", [moving, calm]),
                                     ("between pans", [moving, against])):
                    edits.append(assemble(f"dissolve {length} {where} {speed} ({p})", f"{where} {speed}", shots,
                                          dissolve=length))
    return edits


def all_edits(seeds: Sequence[int] = (0, 1, 2)) -> list[Edit]:
    return [e for seed in seeds for make in (hard_cut_edits, short_shot_edits, flash_edits, motion_edits,
                                              transition_edits) for e in make(seed)]


def transition_benchmark_edits(seeds: Sequence[int] = (0, 1, 2)) -> list[Edit]:
    """``all_edits`` (the cut benchmark's, unchanged) plus more dissolves and fades, lighting ramps and interviews."""
    return all_edits(seeds) + [e for seed in seeds for make in (more_transition_edits, lighting_edits,
                                                                 interview_edits) for e in make(seed)]
