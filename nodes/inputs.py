"""The inputs the nodes declare: the pack's socket types (defined once; what travels on them is frozen, as ComfyUI
hands the same object to every consumer and caches it), the widgets, each from the core's :data:`PARAMETERS`
(default, limits and tooltip, never restated), and the groups of them several nodes share, in the order their
values are saved in workflows; the target inputs' plan."""
from __future__ import annotations

from comfy_api.latest import io

from ..m3ddm_core import CHOICES, PARAMETERS, plan_target

from .validation import node_errors

CATEGORY = "M3DDM"
M3DDMModelType = io.Custom("M3DDM_MODEL")  # runtime.M3DDMModel
M3DDMCanvasType = io.Custom("M3DDM_CANVAS")  # the core's FrameCanvas
M3DDMGlobalType = io.Custom("M3DDM_GLOBAL")  # GlobalFrames
M3DDMKeyframesType = io.Custom("M3DDM_KEYFRAMES")  # KeyframeReview
WIDGETS = {bool: io.Boolean, int: io.Int, float: io.Float, str: io.String}
TARGET = ("target", "aspect_ratio", "width", "height", "pad_left", "pad_right", "pad_top", "pad_bottom", "canvas_mode")
PASSES = ("strides", "schedule")  # a coarse-to-fine run's
FROM_CANVAS = "canvas"
CANVAS_TIP = ("canvas: as decided on the M3DDM Outpaint Canvas (its preview shows the cuts, its setups who shares a "
              "border); with detect or list here, returning set-ups are grouped automatically.")


def node_schema(node_id: str, display_name: str, **schema) -> io.Schema:
    """A node's schema in the pack's category (``schema``: description, inputs, outputs and what else it sets)."""
    return io.Schema(node_id=node_id, display_name=display_name, category=CATEGORY, **schema)


def widget(name: str, note: str = "", **changes):
    """The input ``name`` of :data:`PARAMETERS`: a combo of its options or a widget of its default's type within its
    limits. ``note`` follows its help in the tooltip (what this node adds); ``changes`` replace what it sets."""
    p = PARAMETERS[name]
    given = dict(default=p.default, tooltip=f"{p.help} {note}" if note else p.help)
    if p.options:
        return io.Combo.Input(name, **{**given, "options": list(p.options), **changes})
    limits = {key: v for key, v in (("min", p.low), ("max", p.high), ("step", p.step)) if v is not None}
    return WIDGETS[type(p.default)].Input(name, **{**given, **limits, **changes})


def widgets(*names: str) -> list:
    """:func:`widget` of each of ``names``, in that order."""
    return [widget(name) for name in names]


def sampling_inputs(fps: bool = True) -> list:
    """The sampler's inputs; ``fps=False`` leaves out the fps input (a VIDEO brings its own)."""
    rate = [widget("fps", "Get Video Components gives it.")] if fps else []
    return [*widgets("scheduler", "steps", "context_guidance", "global_guidance"),
            widget("seed", control_after_generate=True), *rate, widget("low_vram")]


def shot_inputs(from_canvas: bool = False) -> list:
    """``shots`` (how the video is split into shots) and ``cuts`` (the list, when given by hand); ``from_canvas``
    adds the option (and default) of following the connected canvas."""
    shots = widget("shots", CANVAS_TIP, options=[FROM_CANVAS, *CHOICES.shots], default=FROM_CANVAS) if from_canvas \
        else widget("shots")
    return [shots, widget("cuts")]


def working_inputs() -> list:
    """The model family's preprocessing and the working size (M3DDM Outpaint Canvas and Outpaint Video)."""
    return [widget("preprocessing", "Load M3DDM Model says which family a model is.", optional=True),
            widget("working_size", optional=True)]


def plan_for(frame_hw: tuple[int, int], node: str, target, aspect_ratio, width, height, pad_left, pad_right,
             pad_top, pad_bottom, canvas_mode, video: bool = False, family: str = "m3ddm",
             working_size: int = CHOICES.working_size):
    """The core's :func:`plan_target` of the target inputs, or a node-named error (``video``: the output becomes a
    video file, so its sides must be even)."""
    with node_errors(node):
        return plan_target(frame_hw, target, ratio=aspect_ratio, size=(height, width),
                           padding=(pad_left, pad_right, pad_top, pad_bottom), mode=canvas_mode,
                           canvas_size=working_size, family=family, video=video)
