"""M3DDM Keyframe Preview and M3DDM Continue: the core's review gate (``m3ddm_core/pipeline/review.py``) as two
nodes; any IMAGE node between them can repaint a key frame.
"""
from __future__ import annotations

import logging

from comfy_api.latest import io
from comfy_execution.graph_utils import ExecutionBlocker

from ..m3ddm_core import SampleSettings, finish_review, preview_keyframes

from . import runtime
from .inputs import (M3DDMCanvasType, M3DDMKeyframesType, M3DDMModelType, PASSES, node_schema, sampling_inputs,
                     widget, widgets)
from .layouts import rgb_frames, to_latent_dict, vae_codec
from .validation import node_errors

log = logging.getLogger("M3DDM")
PREVIEW = "M3DDM_KeyframePreview"
CONTINUE = "M3DDM_Continue"


class M3DDMKeyframePreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            PREVIEW, "M3DDM Keyframe Preview",
            description="Samples only each shot's key frames -- the sparsest level of Coarse-to-Fine, which guides "
                        "everything after it (1 of 33 passes for 450 frames; a short shot: its first clip) -- and "
                        "shows them composited, so a long render can be judged before it runs. Re-roll a shot with "
                        "shot_seeds, repaint a key frame in any node, then finish with M3DDM Continue (nothing is "
                        "sampled twice).",
            inputs=[
                M3DDMModelType.Input("m3ddm_model", tooltip="From Load M3DDM Model."),
                io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE."),
                M3DDMCanvasType.Input("canvas", tooltip="From M3DDM Outpaint Canvas (its cuts are the shots)."),
                *sampling_inputs(),
                *widgets(*PASSES),
                widget("feather", "Here: of the preview's composite."),
                widget("shot_seeds", optional=True),
            ],
            outputs=[
                io.Image.Output(display_name="key_frames", tooltip="The key frames, composited at native size."),
                io.String.Output(display_name="frame_numbers",
                                 tooltip="Which frame of the video each key frame is, in order."),
                M3DDMKeyframesType.Output(display_name="keyframes", tooltip="For M3DDM Continue."),
                io.String.Output(display_name="shots",
                                 tooltip="Each shot's frames, camera set-up and key frames, e.g. 'shot 1 A: frames "
                                         "0-39, key frames 0, 15, 30, 39'. Shots with one letter share their border; "
                                         "split or join them with setups on M3DDM Outpaint Canvas."),
            ],
        )

    @classmethod
    def execute(cls, m3ddm_model, vae, canvas, scheduler, steps, context_guidance, global_guidance, seed, fps,
                low_vram, strides, schedule, feather, shot_seeds="") -> io.NodeOutput:
        encode, decode = vae_codec(vae, PREVIEW)
        settings = SampleSettings.of(scheduler, steps, context_guidance, global_guidance, low_vram)
        with node_errors(PREVIEW):
            # a Coarse-to-Fine run of the same inputs: its store is the one Continue (or Coarse-to-Fine) resumes
            video = canvas.prepare(m3ddm_model.family, encode, settings, fps, seed=seed, strides=strides,
                                   schedule=schedule, shot_seeds=shot_seeds)
        with runtime.sampling_errors(PREVIEW):
            review = preview_keyframes(video, canvas.frames, runtime.comfy_runtime(m3ddm_model, PREVIEW), decode,
                                       feather)
        return io.NodeOutput(review.preview.to(runtime.output_device()), ", ".join(map(str, review.frames)), review,
                             review.shots)


class M3DDMContinue(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            CONTINUE, "M3DDM Continue",
            description="Finishes a run started by M3DDM Keyframe Preview: the key frames come from its pass "
                        "store, the finer levels are sampled guided by them. The review gate: while 'render' is "
                        "off, a Run stops here (the key frames are previewed, nothing after this node runs); judge "
                        "them, switch 'render' on and Run again. Unedited, the result equals one Coarse-to-Fine run "
                        "of the same inputs; an edited key frame (same count and order as the preview) is brought "
                        "back onto the working canvas, encoded and used as that frame.",
            inputs=[
                M3DDMKeyframesType.Input("keyframes", tooltip="From M3DDM Keyframe Preview."),
                M3DDMModelType.Input("m3ddm_model", tooltip="The same model as the preview's."),
                io.Vae.Input("vae", tooltip="The same VAE as the preview's."),
                io.Boolean.Input("render", default=False,
                                 tooltip="Off: the Run stops after the key frames (review them in the preview). On: "
                                         "sample the rest and go on to the composite and Save Video. Nothing is "
                                         "sampled twice."),
                io.Image.Input("edited", optional=True,
                               tooltip="Optional: the preview's key frames with some of them changed (repainted, "
                                       "retouched). Frames equal to the preview are kept as sampled."),
            ],
            outputs=[
                io.Image.Output(display_name="generated", tooltip="The generated working canvases, one per frame; "
                                                                  "feed M3DDM Composite."),
                io.Latent.Output(display_name="latent", tooltip="Latents of every frame."),
            ],
        )

    @classmethod
    def execute(cls, keyframes, m3ddm_model, vae, render=False, edited=None) -> io.NodeOutput:
        if not render:  # the review gate: what depends on this node waits, without an error
            log.info("[%s] stopped for review: %d key frame(s) previewed; switch 'render' on and Run again to "
                     "sample the other %d pass(es)", CONTINUE, len(keyframes.frames), keyframes.remaining)
            return io.NodeOutput(ExecutionBlocker(None), ExecutionBlocker(None))  # None: blocked silently
        encode, decode = vae_codec(vae, CONTINUE)
        edited = None if edited is None else rgb_frames(edited, CONTINUE).float().cpu()
        with runtime.sampling_errors(CONTINUE):
            result = finish_review(keyframes, runtime.comfy_runtime(m3ddm_model, CONTINUE), decode, edited, encode)
        return io.NodeOutput(result.canvases.to(runtime.output_device()), to_latent_dict(result.latents, result.frames))
