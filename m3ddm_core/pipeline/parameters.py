"""What a front-end offers its user, once: the choices of every list input (:data:`CHOICES`) and every setting's
default, limits and meaning (:data:`PARAMETERS`). The nodes build their widgets from it and the batch command its
options and ``--help``; :func:`limit_problems` checks given values against the limits. Defaults are read from the
code that uses them where it has one (:class:`.passes.SampleSettings`, the working size)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from ..model.loader import DTYPES, FAMILIES, WEIGHT_SUFFIXES
from .canvas import CANVAS_MODES, OFFICIAL_CANVAS, TARGETS, WORKING_SIZES
from .noise_schedulers import SCHEDULERS
from .passes import SampleSettings
from .schedule import SCHEDULES, STRIDE_PRESETS

SHOT_MODES = ("none", "detect", "list")  # one shot, cuts found, cuts given
SETUP_MODES = ("auto", "none")  # returning camera set-ups grouped by their frames, or every shot its own
COMPARE_LAYOUTS = ("auto", "side by side", "stacked")  # before/after frames (analysis.compare)
EVALUATION_DIRECTIONS = ("horizontal", "vertical", "all sides")  # sides masked for evaluation (analysis.evaluate)


@dataclass(frozen=True)
class Choices:
    """The lists a front-end offers, each from the module that defines it (the analysis layer's, which sits above
    this one, defined here and read there)."""

    schedulers: tuple[str, ...] = tuple(SCHEDULERS)
    schedules: tuple[str, ...] = tuple(SCHEDULES)
    strides: tuple[str, ...] = ("auto", *STRIDE_PRESETS)
    targets: tuple[str, ...] = TARGETS
    shots: tuple[str, ...] = SHOT_MODES
    setups: tuple[str, ...] = SETUP_MODES
    families: tuple[str, ...] = FAMILIES
    dtypes: tuple[str, ...] = tuple(DTYPES)
    weight_suffixes: tuple[str, ...] = WEIGHT_SUFFIXES
    working_sizes: range = WORKING_SIZES
    working_size: int = OFFICIAL_CANVAS  # the default: as M3DDM was trained
    layouts: tuple[str, ...] = COMPARE_LAYOUTS
    directions: tuple[str, ...] = EVALUATION_DIRECTIONS


CHOICES = Choices()
Value = Union[bool, int, float, str]


@dataclass(frozen=True)
class Parameter:
    """One setting: its ``default`` (its type is the setting's), ``help`` (what it does, for any front-end), and
    either ``options`` (a choice among them) or the limits ``low``..``high`` in steps of ``step``."""

    default: Value
    help: str
    low: Optional[Value] = None
    high: Optional[Value] = None
    step: Optional[Value] = None
    options: tuple[str, ...] = ()

    def problem(self, value: Value) -> Optional[str]:
        """What is wrong with ``value`` for this setting, or None."""
        if self.options and value not in self.options:
            return f"{value!r} is unknown; choose one of {', '.join(self.options)}"
        if self.low is not None and value < self.low:
            return f"{value} is below {self.low}, the least it takes"
        if self.high is not None and value > self.high:
            return f"{value} is above {self.high}, the most it takes"
        return None


_SAMPLING = SampleSettings()
_PAD = Parameter(0.0, "Pixels to add on this side; a value below 1 is a fraction of the frame (0.25 = a quarter).",
                 0.0, 16384.0, 1.0)
_CUTS = "the first frame of every new shot, counted from 0 in the frames outpainted, e.g. 120, 348"

PARAMETERS: dict[str, Parameter] = {
    # the output
    "target": Parameter(TARGETS[0], "How the output is given: an aspect ratio, an output size, or per-side padding.",
                        options=TARGETS),
    "aspect_ratio": Parameter("9:16", "Target aspect ratio W:H (e.g. 16:9 or 9:16), or the official list form "
                                      "16:9,9:16 (the union of all). Used when target = aspect ratio."),
    "width": Parameter(1920, "Output width in pixels (target = output size); at least the frame width.", 1, 16384),
    "height": Parameter(1080, "Output height in pixels (target = output size); at least the frame height.", 1, 16384),
    "pad_left": _PAD, "pad_right": _PAD, "pad_top": _PAD, "pad_bottom": _PAD,
    "canvas_mode": Parameter(CANVAS_MODES[0], "official: the square working canvas the model was trained on. tight: a "
                                              "canvas of the output's aspect (sides multiples of 64, about the working "
                                              "size squared), less wasted work, outside the training distribution.",
                             options=CANVAS_MODES),
    "preprocessing": Parameter("auto", "How frames become the model's input. auto: as the model's family. m3ddm: "
                                       "OpenCV resize, global frames = the masked canvases (the official M3DDM code). "
                                       "m3ddm_plus: antialiased resize, global frames = the whole source frames "
                                       "squashed to the working size (the M3DDM+ authors' code).",
                               options=("auto", *FAMILIES)),
    "working_size": Parameter(OFFICIAL_CANVAS, "Side of the square working canvas the model sees (M3DDM+'s "
                                               "output_size). 256: as M3DDM was trained. Larger gives more border "
                                               "detail and costs time and memory (the README lists traced VRAM per "
                                               "size).", WORKING_SIZES[0], WORKING_SIZES[-1], WORKING_SIZES.step),
    "feather": Parameter(8, "Seam blend width in output pixels, from the frame's edge into the generated border (the "
                            "original pixels stay as they are).", 0, 256),
    # sampling
    "scheduler": Parameter(_SAMPLING.scheduler, "pndm: the official sampler (50 steps). ddim / dpmpp_2m: usable with "
                                                "fewer steps (20-25).", options=CHOICES.schedulers),
    "steps": Parameter(_SAMPLING.steps, "Denoising steps per 16-frame clip.", 1, 1000),
    "context_guidance": Parameter(_SAMPLING.s1, "s1: guidance by the visible video content (official 2). 1 skips a "
                                                "UNet branch.", 0.0, 20.0, 0.1),
    "global_guidance": Parameter(_SAMPLING.s2, "s2: guidance by the 16 global frames of the whole video (official 4).",
                                 0.0, 20.0, 0.1),
    "seed": Parameter(0, "Noise seed; the same seed gives the same video on CPU, CUDA and MPS.", 0, 2 ** 64 - 1),
    "fps": Parameter(24.0, "Frame rate of the source video. The model is conditioned on fps // stride, as in the "
                           "official code.", 0.0, 240.0, 0.01),
    "low_vram": Parameter(_SAMPLING.sequential, "Run the guidance branches one after another: less VRAM, a bit "
                                                "slower. Off: batched when the free memory holds them, else one after "
                                                "another automatically."),
    "strides": Parameter("auto", "Frame intervals of the passes, coarse to fine. auto: dense below 50 frames, 15,5,1 "
                                 "up to 226 frames, 30,15,1 beyond (the paper's choice for long videos).",
                         options=CHOICES.strides),
    "schedule": Parameter(SCHEDULES[0], "fixed: every frame generated once, nothing past the end. official: the "
                                        "official code's windows (for comparisons).", options=SCHEDULES),
    "frame_indexes": Parameter("0-15", "Source frames of the clip: a range 0-15, or a list such as 0,15,30,...; up "
                                       "to 16, fewer are padded with the last one. The stride (the model sees fps // "
                                       "stride) is the largest gap between consecutive indexes: 1 for a range, 15 for "
                                       "0,15,30,... -- give evenly spaced indexes."),
    # which frames
    "start_frame": Parameter(0, "First frame of the source to outpaint (0 = the beginning).", 0, 10_000_000),
    "frame_count": Parameter(0, "How many frames from start_frame; 0 = to the end of the video.", 0, 10_000_000),
    # edited videos
    "shots": Parameter(SHOT_MODES[0], "Edited videos: outpaint each shot as its own video (own global frames and key "
                                      "frames, nothing carried across a cut). none: one shot. detect: find the hard "
                                      "cuts (PySceneDetect), dissolves and fades (a dissolve splits its shots at its "
                                      "middle; the borders of both are blended with the picture). list: the cuts "
                                      "given.", options=SHOT_MODES),
    "cuts": Parameter("", f"shots = list: {_CUTS}."),
    "setups": Parameter(SETUP_MODES[0], "With shots, returning camera set-ups (an interview's A, B, A cameras): shots "
                                        "of one set-up share their global frames and seed, so the border invented for "
                                        "a room stays the same when the edit comes back to it. auto: grouped by how "
                                        "alike the shots look. none: every shot its own. Or one label per shot to "
                                        "split or join them by hand, e.g. A B A C."),
    "shot_seeds": Parameter("", "Re-roll shots: shot:seed pairs, e.g. 2:1234 (shots counted from 1). Empty: every "
                                "shot's seed derives from seed."),
    # the model
    "dtype": Parameter("auto", "Weight and compute precision. auto: fp16/bf16 on GPUs that support it, fp32 on the "
                               "CPU.", options=("auto", *DTYPES)),
    "family": Parameter("auto", "The model family, which sets how frames are preprocessed (canvas resize, global "
                                "frames). auto: what the weights say (an M3DDM+ checkpoint, a converted file's "
                                "marker, 'm3ddm_family' in config.json, or 'plus' in the name; else M3DDM).",
                        options=("auto", *FAMILIES)),
    # review and measurement
    "layout": Parameter(COMPARE_LAYOUTS[0], "auto: side by side for portrait results, stacked for landscape ones "
                                            "(the squarer frame).", options=COMPARE_LAYOUTS),
    "gap": Parameter(16, "Pixels between the two (even keeps H.264-friendly sizes).", 0, 512, 2),
    "mask_ratio": Parameter(0.25, "Share of the frame masked and generated: the M3DDM paper reports 0.25 and 0.666 "
                                  "(of the width, half on each side).", 0.01, 0.99, 0.001),
    "direction": Parameter(EVALUATION_DIRECTIONS[0], "Which borders are masked: horizontal (left and right, the M3DDM "
                                                     "paper's protocol), vertical (top and bottom) or all sides (the "
                                                     "ratio of each).", options=EVALUATION_DIRECTIONS),
    "paper_size": Parameter(True, "Resize the frames to 256x256 first, as the papers evaluate. Off: native size."),
}


def limit_problems(**values: Value) -> list[str]:
    """The problems of these settings (named as in :data:`PARAMETERS`) with their options and limits, one message
    each, led by the setting's name; empty: all fine."""
    problems = []
    for name, value in values.items():
        problem = PARAMETERS[name].problem(value)
        if problem:
            problems.append(f"{name}: {problem}")
    return problems
