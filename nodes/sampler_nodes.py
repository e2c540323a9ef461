"""M3DDM Encode Global Frames, M3DDM Sample Clip and M3DDM Coarse-to-Fine Outpaint."""
from __future__ import annotations

from comfy_api.latest import io

from ..m3ddm_core import GlobalFramesError, SampleSettings, outpaint_clip, resolve_edit, sample

from . import runtime
from .inputs import (FROM_CANVAS, M3DDMCanvasType, M3DDMGlobalType, M3DDMModelType, PASSES, node_schema,
                     sampling_inputs, shot_inputs, widget, widgets)
from .layouts import guide_latents, to_latent_dict, vae_codec
from .validation import node_errors, text_input_problem


def _model_vae_canvas_inputs() -> list:
    return [
        M3DDMModelType.Input("m3ddm_model", tooltip="From Load M3DDM Model."),
        io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE."),
        M3DDMCanvasType.Input("canvas", tooltip="From M3DDM Outpaint Canvas."),
    ]


GLOBAL_FIX = ". M3DDM Encode Global Frames takes this node's canvas and model"
GLOBAL_OR_NONE = f"{GLOBAL_FIX}; or disconnect global_frames (then each shot's are encoded here)"  # when optional


class M3DDMEncodeGlobalFrames(io.ComfyNode):
    NODE = "M3DDM_EncodeGlobalFrames"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls.NODE, "M3DDM Encode Global Frames",
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
        return io.NodeOutput(canvas.encode_global(m3ddm_model and m3ddm_model.family, encode))


class M3DDMSampleClip(io.ComfyNode):
    NODE = "M3DDM_SampleClip"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls.NODE, "M3DDM Sample Clip",
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
        with node_errors(cls.NODE, GlobalFramesError, hint=GLOBAL_FIX):
            g_latents = canvas.global_latents(global_frames, m3ddm_model.family)
        guides = guide_latents(guide, cls.NODE) if guide is not None else {}
        settings = SampleSettings.of(scheduler, steps, context_guidance, global_guidance, low_vram)
        with runtime.sampling_errors(cls.NODE):
            out = outpaint_clip(canvas.frames, frame_indexes, canvas.plan_for(m3ddm_model.family), encode,
                                runtime.comfy_runtime(m3ddm_model, cls.NODE), settings, fps, seed, guides, g_latents,
                                decode)
        return io.NodeOutput(to_latent_dict(out.latents, out.frames), out.canvases.to(runtime.output_device()))


class M3DDMCoarseToFine(io.ComfyNode):
    NODE = "M3DDM_CoarseToFine"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls.NODE, "M3DDM Coarse-to-Fine Outpaint",
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
        encode, decode = vae_codec(vae, cls.NODE)
        settings = SampleSettings.of(scheduler, steps, context_guidance, global_guidance, low_vram)
        # a bad schedule, cut or global frames: before any encoding
        with node_errors(cls.NODE), node_errors(cls.NODE, GlobalFramesError, hint=GLOBAL_OR_NONE):
            edit = None if shots == FROM_CANVAS else resolve_edit(shots, cuts, "auto", canvas.frames,
                                                                  canvas.num_frames, cls.NODE)
            video = canvas.prepare(m3ddm_model.family, encode, settings, fps, seed=seed, strides=strides,
                                   schedule=schedule, edit=edit, global_frames=global_frames)
        with runtime.sampling_errors(cls.NODE):
            result = sample(video, runtime.comfy_runtime(m3ddm_model, cls.NODE), decode=decode)
        return io.NodeOutput(result.canvases.to(runtime.output_device()), to_latent_dict(result.latents, result.frames))
