"""M3DDM video outpainting, in pure PyTorch (no ComfyUI import).

model: :func:`build_unet`, :func:`load_unet` (``unet3d``, ``loader``); pipeline: :func:`plan_canvas` and
:func:`build_canvas` (``canvas``), :func:`plan_schedule` (``schedule``), :func:`outpaint_video` (``video``, on
``sampler``), :func:`composite` (``composite``). ``reference`` reproduces the official call semantics.
"""
from .attention import sdpa_attention, softmax_attention
from .canvas import CanvasError, CanvasPlan, build_canvas, plan_canvas
from .composite import composite
from .config import FULL_SIZE_CONFIG, ConfigError, parse_config
from .loader import WeightsError, load_unet
from .schedule import plan_schedule
from .unet3d import M3DDMUNet, build_unet
from .video import OutpaintResult, SampleSettings, outpaint_video

__all__ = ["FULL_SIZE_CONFIG", "ConfigError", "parse_config", "M3DDMUNet", "build_unet", "load_unet",
           "WeightsError", "sdpa_attention", "softmax_attention", "CanvasError", "CanvasPlan", "build_canvas",
           "plan_canvas", "plan_schedule", "OutpaintResult", "SampleSettings", "outpaint_video", "composite"]
