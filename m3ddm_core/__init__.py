"""M3DDM video outpainting, in pure PyTorch (no ComfyUI import)."""
from .attention import sdpa_attention, softmax_attention
from .config import FULL_SIZE_CONFIG, ConfigError, parse_config
from .loader import WeightsError, load_unet
from .unet3d import M3DDMUNet, build_unet

__all__ = ["FULL_SIZE_CONFIG", "ConfigError", "parse_config", "M3DDMUNet", "build_unet", "load_unet",
           "WeightsError", "sdpa_attention", "softmax_attention"]
from .canvas import CanvasError, CanvasPlan, build_canvas, plan_canvas  # noqa: E402
from .schedule import plan_schedule  # noqa: E402
from .video import OutpaintResult, SampleSettings, outpaint_video  # noqa: E402
from .composite import composite  # noqa: E402

__all__ += ["CanvasError", "CanvasPlan", "build_canvas", "plan_canvas", "plan_schedule", "OutpaintResult",
            "SampleSettings", "outpaint_video", "composite"]
