"""M3DDM Quality Check and M3DDM Evaluate: how good an outpaint is -- where it likely looks wrong, without ground
truth; and the papers' protocol on the user's own footage (borders masked, outpainted back, measured)."""
from __future__ import annotations

import json
import logging

import torch
from comfy_api.latest import io

from ..m3ddm_core import CHOICES, SampleSettings, check_quality, evaluation_task, sample, schedule_windows

from . import runtime
from .inputs import M3DDMCanvasType, M3DDMModelType, PASSES, node_schema, sampling_inputs, widget, widgets
from .layouts import rgb_frames, vae_codec
from .validation import node_error, node_errors

log = logging.getLogger("M3DDM")


class M3DDMQualityCheck(io.ComfyNode):
    NODE = "M3DDM_QualityCheck"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls.NODE, "M3DDM Quality Check",
            description="Scores an outpainted video without ground truth, per shot and per sampling window, over the "
                        "generated band next to the seam: seam visibility (the step across the seam against the "
                        "picture's own steps), border flicker (the border's frame-to-frame change against the "
                        "original's) and colour drift (the border's colour moving away from the original's over the "
                        "shot). Proxies that point at frames to look at; a plot shows them over the frames.",
            inputs=[
                io.Image.Input("images", optional=True,
                               tooltip="The outpainted frames (M3DDM Composite's output), with the canvas they were "
                                       "made with."),
                M3DDMCanvasType.Input("canvas", optional=True,
                                      tooltip="The canvas of the images (M3DDM Outpaint Canvas); its cuts are the "
                                              "shots."),
                io.Video.Input("video", optional=True,
                               tooltip="Or: the VIDEO of M3DDM Outpaint Video (its canvas and cuts come with it); it "
                                       "is composited frame by frame here, in flat memory."),
                *widgets(*PASSES),
            ],
            outputs=[
                io.String.Output(display_name="report", tooltip="The flagged windows and their scores, as text."),
                io.String.Output(display_name="report_json",
                                 tooltip="Every score per frame, window and shot, as JSON (windows are the passes "
                                         "of the finest level, as the sampler ran them)."),
                io.Image.Output(display_name="plot",
                                tooltip="The three scores over the frames, thresholds dashed, cuts in red, "
                                        "dissolves and fades blue, flagged windows shaded red."),
            ],
        )

    @classmethod
    def execute(cls, strides, schedule, images=None, canvas=None, video=None) -> io.NodeOutput:
        if video is not None:
            if images is not None:
                raise node_error(cls.NODE, "connect either images (with their canvas) or the video of M3DDM Outpaint "
                                           "Video, not both")
            outpainted = getattr(video, "outpainted", None)
            if outpainted is None:
                raise node_error(cls.NODE, "the video input takes the VIDEO of M3DDM Outpaint Video (it carries its "
                                           "canvas); for other videos, connect their frames as images with the canvas")
            plan, edit, frames, count = outpainted.plan, outpainted.edit, outpainted.frames(), outpainted.count
        elif images is not None and canvas is not None:
            frames_t = rgb_frames(images, cls.NODE)
            count = int(frames_t.shape[0])
            if count != canvas.num_frames:
                raise node_error(cls.NODE, f"{count} images for a canvas of {canvas.num_frames} frames: connect M3DDM "
                                           "Composite's output for this canvas")
            plan, edit = canvas.plan, canvas.edit
            frames = ((f * 255.0).round().to(torch.uint8).cpu().numpy() for f in frames_t)
        else:
            raise node_error(cls.NODE, "connect the outpainted images with their canvas, or the video of M3DDM "
                                       "Outpaint Video")
        with node_errors(cls.NODE, hint=": connect M3DDM Composite's output for this canvas" if video is None else ""):
            windows = schedule_windows(count, edit.cuts, strides, schedule)
            report = check_quality(frames, plan, edit.cuts, windows, groups=edit.groups, transitions=edit.transitions)
        text = report.text()
        log.info("[%s] %s", cls.NODE, text.replace("\n", " | "))
        plot = torch.from_numpy(report.plot()).float().div(255.0)[None].to(runtime.output_device())
        return io.NodeOutput(text, json.dumps(report.to_dict()), plot, ui={"text": [text]})


class M3DDMEvaluate(io.ComfyNode):
    NODE = "M3DDM_Evaluate"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls.NODE, "M3DDM Evaluate",
            description="Measures outpainting quality the way the papers do: the borders of a ground-truth video "
                        "are masked (M3DDM: horizontal, mask ratio 0.25 or 0.666, frames at 256x256), outpainted "
                        "back with the model and settings given, and compared with the truth: PSNR, SSIM and MSE "
                        "over the generated region and over whole frames; LPIPS where its AlexNet weights are on "
                        "this machine. Compare M3DDM with M3DDM+, or sampler settings, on your own footage.",
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="Ground-truth frames (a video you have in full)."),
                M3DDMModelType.Input("m3ddm_model", tooltip="The model to evaluate (Load M3DDM Model)."),
                io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE."),
                *widgets("mask_ratio", "direction", "paper_size"),
                *sampling_inputs(),
                *widgets(*PASSES),
                widget("working_size", "Here the preprocessing follows the model's family.", optional=True),
            ],
            outputs=[
                io.String.Output(display_name="report", tooltip="The figures, one line per group."),
                io.Image.Output(display_name="outpainted", tooltip="The outpainted frames that were measured."),
                io.Image.Output(display_name="ground_truth", tooltip="The truth they were measured against."),
            ],
        )

    @classmethod
    def execute(cls, images, m3ddm_model, vae, mask_ratio, direction, paper_size, scheduler, steps,
                context_guidance, global_guidance, seed, fps, low_vram, strides, schedule,
                working_size=CHOICES.working_size) -> io.NodeOutput:
        encode, decode = vae_codec(vae, cls.NODE)
        settings = SampleSettings.of(scheduler, steps, context_guidance, global_guidance, low_vram)
        with node_errors(cls.NODE):
            task = evaluation_task(rgb_frames(images, cls.NODE), mask_ratio, direction, paper_size, working_size,
                                   m3ddm_model.family)
            video = task.canvas.prepare(None, encode, settings, fps, seed=seed, strides=strides, schedule=schedule)
        with runtime.sampling_errors(cls.NODE):
            result = sample(video, runtime.comfy_runtime(m3ddm_model, cls.NODE), decode=decode)
        outpainted, metrics = task.score(result.canvases)
        report = task.report(metrics, settings, seed)
        log.info("[%s] %s", cls.NODE, report.replace("\n", " | "))
        device = runtime.output_device()
        figures = {"region": metrics.region, "frame": metrics.frame, "missing": metrics.missing}
        return io.NodeOutput(report, outpainted.to(device), task.truth.to(device),
                             ui={"text": [report], "metrics": [figures]})
