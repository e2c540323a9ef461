"""M3DDM Encode Global Frames, M3DDM Sample Clip and M3DDM Coarse-to-Fine Outpaint."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..m3ddm_core import Edit, Outpainted, SampleSettings, encode_global_frames, outpaint_clip, prepare, sample

from . import runtime
from .layouts import guide_latents, rgb_frames, to_latent_dict, vae_codec
from .validation import node_error, node_errors, text_input_problem
from .shot_inputs import FROM_CANVAS, find_edit, shot_inputs
from .types import GlobalFrames, M3DDMCanvasType, M3DDMGlobalType, M3DDMModelType
from .widgets import widget, widgets


def _model_vae_canvas_inputs() -> list:
    return [
        M3DDMModelType.Input("m3ddm_model", tooltip="From Load M3DDM Model."),
        io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE."),
        M3DDMCanvasType.Input("canvas", tooltip="From M3DDM Outpaint Canvas."),
    ]


PASSES = ("strides", "schedule")  # a coarse-to-fine run's


def sampling_inputs(fps: bool = True) -> list:
    """The sampler's inputs; ``fps=False`` leaves out the fps input (a VIDEO brings its own)."""
    rate = [widget("fps", "Get Video Components gives it.")] if fps else []
    return [*widgets("scheduler", "steps", "context_guidance", "global_guidance"),
            widget("seed", control_after_generate=True), *rate, widget("low_vram")]


def _check_global(global_frames, canvas, plan, node):
    """The latents of ``global_frames`` if they were encoded for ``canvas`` sampled with ``plan``."""
    if global_frames is None:
        return None
    other = global_frames.video_id != canvas.video_id
    if not other and global_frames.plan.family != plan.family:
        raise node_error(node, f"the global frames were encoded with {global_frames.plan.family} preprocessing, the "
                               f"model samples with {plan.family}: connect the model to M3DDM Encode Global Frames "
                               f"too, or set preprocessing on M3DDM Outpaint Canvas to {plan.family}")
    if other or global_frames.plan != plan:
        raise node_error(node, "the global frames were encoded for another video or canvas; connect M3DDM Encode "
                               "Global Frames fed by this same canvas")
    return global_frames.latents


def run_outpaint(node: str, m3ddm_model, codec, frames: torch.Tensor, plan, settings: SampleSettings, seed: int,
                 fps: float, strides, schedule: str, edit: Edit = Edit(), global_latents=None) -> Outpainted:
    """Coarse-to-fine outpainting of IMAGE ``frames`` ``[N, H, W, 3]`` cut as ``edit`` says, by the core's entry
    (``codec``: :func:`vae_codec`). Resumable: the frames' hash keys the run's pass store."""
    with node_errors(node):  # a bad schedule or cut is refused before any encoding
        video = prepare(frames, int(frames.shape[0]), plan, codec[0], settings, fps, seed=seed, strides=strides,
                        schedule=schedule, cuts=edit.cuts, global_latents=global_latents, resumable=True,
                        groups=edit.groups, transitions=edit.transitions)
    with runtime.sampling_errors(node):
        return sample(video, runtime.comfy_runtime(m3ddm_model, node), decode=codec[1])


class M3DDMEncodeGlobalFrames(io.ComfyNode):
    NODE = "M3DDM_EncodeGlobalFrames"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=cls.NODE,
            display_name="M3DDM Encode Global Frames",
            category="M3DDM",
            description="Encodes the 16 global frames (sampled uniformly over the whole video; M3DDM: masked like "
                        "the clips; M3DDM+: the whole frames squashed to the working size, as the canvas's "
                        "preprocessing says) with the SD1.5 VAE. Every M3DDM clip cross-attends to them for video-wide "
                        "consistency.",
            inputs=[
                io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE (core Load VAE)."),
                M3DDMCanvasType.Input("canvas", tooltip="From M3DDM Outpaint Canvas."),
                M3DDMModelType.Input("m3ddm_model", optional=True,
                                     tooltip="Optional: the model that will sample. With the canvas's preprocessing on "
                                             "auto, its family decides how the global frames are made (without it: "
                                             "M3DDM's)."),
            ],
            outputs=[M3DDMGlobalType.Output(display_name="global_frames", tooltip="16 encoded global frames.")],
        )

    @classmethod
    def execute(cls, vae, canvas, m3ddm_model=None) -> io.NodeOutput:
        encode, _ = vae_codec(vae, cls.NODE)
        frames = rgb_frames(canvas.frames, cls.NODE)
        plan = canvas.plan_for_model(m3ddm_model)
        latents = encode_global_frames(frames, plan, encode)
        return io.NodeOutput(GlobalFrames(latents=latents, video_id=canvas.video_id, plan=plan))


class M3DDMSampleClip(io.ComfyNode):
    NODE = "M3DDM_SampleClip"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=cls.NODE,
            display_name="M3DDM Sample Clip",
            category="M3DDM",
            description="Outpaints one 16-frame clip. Frames already generated (from the guide LATENT of an "
                        "earlier M3DDM sampler) condition the clip as guide frames, which links clips together.",
            inputs=[
                *_model_vae_canvas_inputs(),
                M3DDMGlobalType.Input("global_frames", tooltip="From M3DDM Encode Global Frames (same canvas)."),
                widget("frame_indexes"),
                *sampling_inputs(),
                io.Latent.Input("guide", optional=True,
                                tooltip="Optional LATENT of an earlier M3DDM sampler: its frames that are in this clip "
                                        "are kept as guides."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="Latents of the clip's frames (core VAE Decode works "
                                                                "on them; also a guide for the next clip)."),
                io.Image.Output(display_name="generated", tooltip="Decoded working canvases of the clip's frames."),
            ],
        )

    @classmethod
    def validate_inputs(cls, frame_indexes=None) -> bool | str:
        return text_input_problem("frame_indexes", frame_indexes)

    @classmethod
    def execute(cls, m3ddm_model, vae, canvas, global_frames, frame_indexes, scheduler, steps, context_guidance,
                global_guidance, seed, fps, low_vram, guide=None) -> io.NodeOutput:
        encode, decode = vae_codec(vae, cls.NODE)
        frames = rgb_frames(canvas.frames, cls.NODE)
        plan = canvas.plan_for_model(m3ddm_model)
        g_latents = _check_global(global_frames, canvas, plan, cls.NODE)
        guides = guide_latents(guide, cls.NODE) if guide is not None else {}
        settings = SampleSettings.of(scheduler, steps, context_guidance, global_guidance, low_vram)
        with runtime.sampling_errors(cls.NODE):
            out = outpaint_clip(frames, frame_indexes, plan, encode, runtime.comfy_runtime(m3ddm_model, cls.NODE),
                                settings, fps, seed, guides, g_latents, decode)
        return io.NodeOutput(to_latent_dict(out.latents, out.frames), out.canvases.to(runtime.output_device()))


class M3DDMCoarseToFine(io.ComfyNode):
    NODE = "M3DDM_CoarseToFine"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=cls.NODE,
            display_name="M3DDM Coarse-to-Fine Outpaint",
            category="M3DDM",
            description="Outpaints a whole video with M3DDM's hybrid coarse-to-fine schedule: sparse key frames "
                        "first (e.g. every 15th), then the frames between them, each clip guided by what is already "
                        "generated. Every frame is generated exactly once; the frame count is kept. Each finished "
                        "pass is kept on disk until the video is done: after a Cancel, an error or a crash, queueing "
                        "the same inputs again samples only the passes that remain. Edited videos can be outpainted "
                        "shot by shot (shots input).",
            inputs=[
                *_model_vae_canvas_inputs(),
                *sampling_inputs(),
                *widgets(*PASSES),
                *shot_inputs(from_canvas=True),
                M3DDMGlobalType.Input("global_frames", optional=True,
                                      tooltip="Optional: from M3DDM Encode Global Frames. Without it they are encoded "
                                              "here with the canvases (M3DDM: no extra VAE work)."),
            ],
            outputs=[
                io.Image.Output(display_name="generated", tooltip="The generated working canvases, one per frame; feed "
                                                                  "M3DDM Composite (optionally through an upscaler)."),
                io.Latent.Output(display_name="latent",
                                 tooltip="Latents of every frame (a guide for M3DDM Sample Clip)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, cuts=None) -> bool | str:
        return text_input_problem("cuts", cuts)

    @classmethod
    def execute(cls, m3ddm_model, vae, canvas, scheduler, steps, context_guidance, global_guidance, seed, fps,
                low_vram, strides, schedule, shots=FROM_CANVAS, cuts="", global_frames=None) -> io.NodeOutput:
        codec = vae_codec(vae, cls.NODE)
        frames = rgb_frames(canvas.frames, cls.NODE)
        edit = canvas.edit if shots == FROM_CANVAS else find_edit(shots, cuts, "auto", frames, len(frames), cls.NODE)
        plan = canvas.plan_for_model(m3ddm_model)
        g_latents = _check_global(global_frames, canvas, plan, cls.NODE)
        if edit.cuts and g_latents is not None:
            raise node_error(cls.NODE, "global frames cover the whole video, but this run is split into shots (each "
                                       "takes its own); disconnect global_frames or set shots to none")
        settings = SampleSettings.of(scheduler, steps, context_guidance, global_guidance, low_vram)
        result = run_outpaint(cls.NODE, m3ddm_model, codec, frames, plan, settings, seed, fps, strides, schedule,
                              edit, g_latents)
        return io.NodeOutput(result.canvases.to(runtime.output_device()), to_latent_dict(result.latents, result.frames))
