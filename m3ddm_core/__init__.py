"""M3DDM video outpainting, in pure PyTorch (no ComfyUI import). This module's exports are the whole interface the
ComfyUI layer uses.

Five layers, each built only on the ones before it (tests/test_layers.py):
``model`` -- the 3D UNet :func:`build_unet`, strict loading :func:`load_unet` (every front-end's :func:`load_model`);
``pipeline`` -- the data flow, entered through :func:`prepare` (check the plan :func:`plan_video`, every seed
derived by :func:`derive_seed`, then encode :func:`encode_video`: an :class:`EncodedVideo` of plain tensors, IMAGE
batches and streamed files alike) and :func:`sample` (place the model through the front-end's :class:`Runtime`, run
the plan :func:`run_plan` -- resumable from a :class:`PassStore`, any subset of passes, each by :func:`run_pass` --
and decode :func:`decode_latents`) -> :func:`composite`; :func:`outpaint_clip` for one hand-picked clip, the
review gate :func:`preview_keyframes` then :func:`finish_review`, a frame batch with its plan and cuts
:class:`FrameCanvas` (prepared as it is cut, its preprocessing following the model: :func:`preprocessing_family`),
:func:`outpaint_video` for frames in memory; the one input check :func:`check_inputs` and what a front-end offers
(:data:`CHOICES`; every setting's default, limits and meaning, :data:`PARAMETERS`); shots :func:`detect_cuts`, traced
memory :func:`sampling_memory` and the decision made from it (:func:`reserve_for_sampling`,
:func:`choose_branching`);
``media`` -- video files through PyAV (:func:`probe`, :func:`read_frames`, :class:`VideoWriter`), the composite
streamed into them (:func:`write_outpainted`), and a file through the pipeline and back (:func:`open_range`,
:func:`prepare_file`, the lazy :class:`OutpaintedFrames`);
``analysis`` -- what the nodes and the apps measure and show of an outpaint: the quality check without ground truth
:func:`check_quality`, the papers' evaluation :func:`evaluate_frames`, before/after frames :func:`compare_frames`;
``apps`` -- the batch command and its jobs, Ray scale-out, weight conversion (no node uses them).
"""
from .model.attention import sdpa_attention, softmax_attention
from .model.config import FULL_SIZE_CONFIG, ConfigError, parse_config
from .model.loader import (DTYPES, FAMILIES, WEIGHT_NAMES, WEIGHT_SUFFIXES, LoadedModel, WeightsError, check_dtype,
                           detect_family, find_weights, list_weights, load_model, load_unet, weights_family)
from .model.unet3d import M3DDMUNet, build_unet
from .pipeline.canvas import (OFFICIAL_CANVAS, TARGETS, WORKING_SIZES, CanvasError, CanvasPlan, build_canvas,
                              check_even, parse_ratio_list, plan_canvas, plan_target)
from .pipeline.parameters import CHOICES, PARAMETERS, SHOT_MODES, Choices, Parameter
from .pipeline.inputs import (UNKNOWN_LENGTH, Edit, check_inputs, parse_frame_indexes, parse_setups, parse_shot_seeds,
                              resolve_edit, setup_labels, shot_summary)
from .pipeline.composite import composite, output_to_canvas
from .pipeline.encode import (SD_LATENT_SCALE, EncodedVideo, encode_global_frames, encode_video, global_frame_indexes,
                              preview_canvases)
from .pipeline.executors import (MAX_PASSES_PER_CALL, PlanResult, PlanRun, choose_branching, default_max_passes,
                                  place_for_sampling, reserve_for_sampling, run_passes, run_plan)
from .pipeline.outpaint import (Outpainted, OutpaintResult, PreparedVideo, Runtime, encode_edits, outpaint_clip,
                                 outpaint_video, prepare, sample)
from .pipeline.review import KeyframeReview, finish_review, preview_keyframes
from .pipeline.frame_canvas import FrameCanvas, GlobalFrames, GlobalFramesError, preprocessing_family
from .pipeline.guidance import active_branches
from .pipeline.memory import MEMORY_MARGIN, fits_batched, sampling_memory
from .pipeline.passes import (PassJob, PreparedShot, SampleSettings, decode_latents, prepare_shot, resume_key,
                              run_pass, run_pass_batch)
from .pipeline.plan import PlannedPass, VideoPlan, plan_video
from .pipeline.resume import (PassStore, content_hash, fingerprint, model_fingerprint, run_key, source_identity,
                              stores_in)
from .pipeline.schedule import (CLIP_FRAMES, GLOBAL_FRAMES, SCHEDULES, STRIDE_PRESETS, Pass, clip_pass, clip_stride,
                                plan_passes, plan_schedule)
from .pipeline.noise_schedulers import SCHEDULERS
from .pipeline.shots import CutDetector, ShotError, check_cuts, detect_cuts, parse_cuts, shot_bounds
from .pipeline.seeds import derive_seed
from .media.stream import composite_frames, write_outpainted
from .media.outpainted import OutpaintedFrames, open_range, prepare_file, writer_options
from .media.video_io import (BIT_DEPTHS, CODECS, CONTAINERS, H264_PRESETS, AudioTrack, Colour, FrameRangeError,
                             VideoFileError, VideoInfo, VideoWriter, audio_track, check_range, colour_space_name,
                             decoder_warning, frames_in_window, probe, read_audio, read_frames)
from .analysis.compare import compare_frames, comparison_hw
from .analysis.quality import QualityReport, check_quality, plan_windows, schedule_windows
from .analysis.evaluate import (PAPER_MASK_RATIOS, PAPER_SIZE, EvaluationTask, Metrics, evaluate_frames,
                                evaluation_padding, evaluation_task, frechet_distance, generated_region, i3d_features,
                                resize_frames)

__all__ = ["sdpa_attention", "softmax_attention", "FULL_SIZE_CONFIG", "ConfigError", "parse_config", "DTYPES",
           "WEIGHT_NAMES", "check_dtype", "find_weights", "list_weights", "WEIGHT_SUFFIXES", "WeightsError",
           "detect_family",
           "load_unet", "load_model", "LoadedModel", "weights_family", "M3DDMUNet", "build_unet", "FAMILIES",
           "OFFICIAL_CANVAS", "TARGETS", "WORKING_SIZES", "plan_target", "CHOICES", "Choices", "SHOT_MODES",
           "PARAMETERS", "Parameter",
           "UNKNOWN_LENGTH", "check_inputs", "parse_frame_indexes", "parse_shot_seeds", "Edit", "resolve_edit",
           "parse_setups", "setup_labels", "shot_summary", "CanvasError", "CanvasPlan",
           "build_canvas", "check_even", "parse_ratio_list", "plan_canvas", "composite", "output_to_canvas",
           "SD_LATENT_SCALE", "EncodedVideo", "encode_global_frames", "encode_video", "global_frame_indexes",
           "preview_canvases", "MAX_PASSES_PER_CALL", "OutpaintResult", "Outpainted", "PreparedVideo", "Runtime",
           "prepare", "sample", "outpaint_clip", "encode_edits", "KeyframeReview", "preview_keyframes",
           "finish_review", "FrameCanvas", "GlobalFrames", "GlobalFramesError", "preprocessing_family", "fingerprint",
           "PlanResult", "PlanRun", "choose_branching",
           "default_max_passes", "reserve_for_sampling", "place_for_sampling", "stores_in", "outpaint_video",
           "run_passes", "run_plan", "active_branches", "MEMORY_MARGIN", "fits_batched", "sampling_memory", "PassJob",
           "PreparedShot", "SampleSettings", "decode_latents", "prepare_shot", "resume_key", "run_pass",
           "run_pass_batch", "PlannedPass", "VideoPlan", "plan_video", "PassStore", "content_hash",
           "model_fingerprint", "run_key", "source_identity", "CLIP_FRAMES", "GLOBAL_FRAMES", "SCHEDULES",
           "STRIDE_PRESETS", "Pass", "clip_pass", "clip_stride", "plan_passes", "plan_schedule", "SCHEDULERS",
           "CutDetector", "ShotError", "check_cuts", "detect_cuts", "parse_cuts", "shot_bounds", "derive_seed",
           "composite_frames", "write_outpainted", "OutpaintedFrames", "open_range", "prepare_file", "writer_options",
           "AudioTrack", "Colour", "VideoFileError", "FrameRangeError", "VideoInfo", "VideoWriter", "audio_track",
           "check_range", "decoder_warning", "BIT_DEPTHS", "CODECS", "CONTAINERS", "H264_PRESETS", "colour_space_name",
           "frames_in_window", "probe", "read_audio", "read_frames", "compare_frames",
           "comparison_hw", "QualityReport", "check_quality", "plan_windows", "schedule_windows",
           "PAPER_MASK_RATIOS", "PAPER_SIZE", "Metrics", "evaluate_frames", "EvaluationTask",
           "evaluation_task", "evaluation_padding", "frechet_distance", "generated_region", "i3d_features",
           "resize_frames"]
