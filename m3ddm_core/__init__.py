"""M3DDM video outpainting, in pure PyTorch (no ComfyUI import).

The data flows load -> canvas -> encode -> sample -> decode -> composite:
model :func:`build_unet`, :func:`load_unet` (``unet3d``, ``loader``); canvas :func:`plan_canvas`,
:func:`build_canvas` (``canvas``); passes :class:`Pass`, :func:`plan_passes`, :func:`clip_pass` (``schedule``);
encode :func:`encode_video`, :func:`encode_pass` and sample :func:`prepare_video`, :func:`run_pass`,
:func:`outpaint_video` (``video``, on ``guidance`` and ``sampler``); decode :func:`decode_latents`;
:func:`composite` (``composite``). Around it: whole videos in bounded memory :func:`encode_frames`,
:func:`composite_frames` (``stream``) with files read and written by ``video_io`` (PyAV); resumable runs
:class:`PassStore` (``resume``); shots :func:`detect_cuts` (``shots``, PySceneDetect); before/after frames
:func:`compare_frames` (``compare``); quality by the papers' protocol :func:`evaluate_frames` (``evaluate``).
``reference`` is the official computation, for tests and benchmarks only.
This module's exports are the whole interface the ComfyUI layer uses.
"""
from .attention import sdpa_attention, softmax_attention
from .canvas import (FAMILIES, OFFICIAL_CANVAS, CanvasError, CanvasPlan, build_canvas, check_even, parse_ratio_list,
                     plan_canvas)
from .compare import LAYOUTS, compare_frames, comparison_hw
from .composite import composite
from .config import FULL_SIZE_CONFIG, ConfigError, parse_config
from .evaluate import (DIRECTIONS, PAPER_MASK_RATIOS, PAPER_SIZE, Metrics, evaluate_frames, evaluation_padding,
                       frechet_distance, generated_region, i3d_features, resize_frames)
from .guidance import active_branches
from .loader import DTYPES, WEIGHT_NAMES, WEIGHT_SUFFIXES, WeightsError, detect_family, load_unet, weights_family
from .encode import SD_LATENT_SCALE, EncodedVideo, encode_global_frames, encode_video, global_frame_indexes
from .executors import OutpaintResult, PlanResult, PlanRun, choose_branching, outpaint_video, run_plan
from .memory import MEMORY_MARGIN, fits_batched, sampling_memory
from .plan import PlannedPass, VideoPlan, plan_video
from .resume import PassStore, content_hash, model_fingerprint, run_key, source_identity
from .schedule import CLIP_FRAMES, GLOBAL_FRAMES, SCHEDULES, STRIDE_PRESETS, Pass, clip_pass, clip_stride, plan_passes, plan_schedule
from .schedulers import SCHEDULERS
from .shots import CutDetector, ShotError, check_cuts, detect_cuts, parse_cuts, shot_bounds, shot_seed
from .stream import composite_frames, write_outpainted
from .unet3d import M3DDMUNet, build_unet
from .video import PreparedShot, SampleSettings, decode_latents, prepare_shot, resume_key, run_pass
from .video_io import (AudioTrack, Colour, VideoFileError, VideoInfo, VideoWriter, audio_track, check_range,
                       decoder_warning, probe, read_audio, read_frames, source_notes)

__all__ = ["sdpa_attention", "softmax_attention", "FAMILIES", "OFFICIAL_CANVAS", "CanvasError", "CanvasPlan",
           "build_canvas", "check_even", "parse_ratio_list", "plan_canvas", "LAYOUTS", "compare_frames",
           "comparison_hw", "composite", "FULL_SIZE_CONFIG", "ConfigError", "parse_config", "DIRECTIONS",
           "PAPER_MASK_RATIOS", "PAPER_SIZE", "Metrics", "evaluate_frames", "evaluation_padding", "frechet_distance",
           "generated_region", "i3d_features", "resize_frames", "active_branches", "DTYPES", "WEIGHT_NAMES",
           "WEIGHT_SUFFIXES", "WeightsError", "detect_family", "load_unet", "weights_family", "SD_LATENT_SCALE",
           "EncodedVideo", "encode_global_frames", "encode_video", "global_frame_indexes", "OutpaintResult",
           "PlanResult", "PlanRun", "choose_branching", "outpaint_video", "run_plan", "MEMORY_MARGIN", "fits_batched",
           "sampling_memory", "PlannedPass", "VideoPlan", "plan_video", "PassStore", "content_hash",
           "model_fingerprint", "run_key", "source_identity", "CLIP_FRAMES", "GLOBAL_FRAMES", "SCHEDULES",
           "STRIDE_PRESETS", "Pass", "clip_pass", "clip_stride", "plan_passes", "plan_schedule", "SCHEDULERS",
           "CutDetector", "ShotError", "check_cuts", "detect_cuts", "parse_cuts", "shot_bounds", "shot_seed",
           "composite_frames", "write_outpainted", "M3DDMUNet", "build_unet", "PreparedShot", "SampleSettings",
           "decode_latents", "prepare_shot", "resume_key", "run_pass", "AudioTrack", "Colour", "VideoFileError",
           "VideoInfo", "VideoWriter", "audio_track", "check_range", "decoder_warning", "probe", "read_audio",
           "read_frames", "source_notes"]
