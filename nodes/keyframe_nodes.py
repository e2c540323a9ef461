"""M3DDM Keyframe Preview and M3DDM Continue: judge a long video by its key frames, change them, then finish it.

M3DDM's coarse-to-fine schedule samples each shot's sparsest level first (e.g. every 15th or 30th frame); every finer
pass is guided by it. The preview samples only that level into the run's pass store and shows the key frames
composited; Continue samples the rest with the same store, so nothing is sampled twice and, unedited, the result
equals one Coarse-to-Fine run. An edited key frame (any IMAGE node can repaint it) is brought back onto the working
canvas, encoded, and guides every later pass.
"""
from __future__ import annotations

import logging

from comfy_api.latest import io
from comfy_execution.graph_utils import ExecutionBlocker

from ..m3ddm_core import composite, encode_edits, prepare, sample, shot_summary

from . import runtime
from .layouts import rgb_frames, to_latent_dict, vae_decoder, vae_encoder
from .validation import node_error, node_errors
from .sampler_nodes import PASSES, sampling_inputs, sampling_settings
from .types import Keyframes, M3DDMCanvasType, M3DDMKeyframesType, M3DDMModelType
from .widgets import widget, widgets

log = logging.getLogger("M3DDM")
PREVIEW = "M3DDM_KeyframePreview"
CONTINUE = "M3DDM_Continue"


class M3DDMKeyframePreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREVIEW,
            display_name="M3DDM Keyframe Preview",
            category="M3DDM",
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
        frames = rgb_frames(canvas.frames, PREVIEW)
        plan = canvas.plan_for_model(m3ddm_model)
        settings = sampling_settings(scheduler, steps, context_guidance, global_guidance, low_vram)
        with node_errors(PREVIEW):
            # a Coarse-to-Fine run of the same inputs: its store is the one Continue (or Coarse-to-Fine) resumes
            video = prepare(frames, int(frames.shape[0]), plan, vae_encoder(vae), settings, fps, seed=seed,
                            strides=strides, schedule=schedule, cuts=canvas.cuts, shot_seeds=shot_seeds or "",
                            resumable=True, groups=canvas.groups, transitions=canvas.transitions)
        first = video.plan.preview_passes()
        with runtime.sampling_errors(PREVIEW):
            keys = sample(video, runtime.comfy_runtime(m3ddm_model, PREVIEW), only=first,
                          decode=vae_decoder(vae, PREVIEW))
        preview = composite(frames[keys.frames].float().cpu(), keys.canvases, plan, feather)
        log.info("[%s] %d key frames of %d frames (%d of %d passes): %s", PREVIEW, len(keys.frames),
                 video.plan.num_frames, len(first), len(video.plan), keys.frames)
        if len(first) < len(video.plan.first_level()):
            log.info("[%s] a short video: its sparsest level is every frame, so the preview is each shot's first "
                     "clip, not the whole render", PREVIEW)
        state = Keyframes(canvas, plan, video, tuple(keys.frames), preview, keys.canvases, feather)
        shots = shot_summary(video.plan, keys.frames)
        log.info("[%s] %s", PREVIEW, shots.replace("\n", "; "))
        return io.NodeOutput(preview.to(runtime.output_device()), ", ".join(map(str, keys.frames)), state, shots)


class M3DDMContinue(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=CONTINUE,
            display_name="M3DDM Continue",
            category="M3DDM",
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
        kf = keyframes
        if not render:  # the review gate: what depends on this node waits, without an error
            log.info("[%s] stopped for review: %d key frame(s) previewed; switch 'render' on and Run again to "
                     "sample the other %d pass(es)", CONTINUE, len(kf.frames),
                     len(kf.video.plan) - len(kf.video.plan.preview_passes()))
            return io.NodeOutput(ExecutionBlocker(None), ExecutionBlocker(None))  # None: blocked silently
        overrides = {}
        if edited is not None:
            edited = rgb_frames(edited, CONTINUE).float().cpu()
            if tuple(edited.shape) != tuple(kf.preview.shape):
                raise node_error(CONTINUE, f"edited has shape {tuple(edited.shape)}, the preview "
                                           f"{tuple(kf.preview.shape)}: give the preview's key frames, same count, "
                                           "order and size")
            overrides = encode_edits(edited, kf.preview, kf.frames, kf.plan, kf.canvases, vae_encoder(vae))
            log.info("[%s] edited key frames: %s", CONTINUE, sorted(overrides) or "none")
        with runtime.sampling_errors(CONTINUE):
            result = sample(kf.video, runtime.comfy_runtime(m3ddm_model, CONTINUE), overrides=overrides,
                            decode=vae_decoder(vae, CONTINUE))
        latent = to_latent_dict(result.latents, result.frames)
        return io.NodeOutput(result.canvases.to(runtime.output_device()), latent)
