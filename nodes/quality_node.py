"""M3DDM Quality Check: where an outpainted video likely looks wrong, without ground truth."""
from __future__ import annotations

import json
import logging

import torch
from comfy_api.latest import io

from ..m3ddm_core import check_quality, schedule_windows

from . import runtime
from .inputs import PASSES, widgets
from .layouts import rgb_frames
from .types import M3DDMCanvasType
from .validation import node_error, node_errors

log = logging.getLogger("M3DDM")
NODE = "M3DDM_QualityCheck"


class M3DDMQualityCheck(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="M3DDM Quality Check",
            category="M3DDM",
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
                raise node_error(NODE, "connect either images (with their canvas) or the video of M3DDM Outpaint "
                                       "Video, not both")
            outpainted = getattr(video, "outpainted", None)
            if outpainted is None:
                raise node_error(NODE, "the video input takes the VIDEO of M3DDM Outpaint Video (it carries its "
                                       "canvas); for other videos, connect their frames as images with the canvas")
            plan, edit, frames, count = outpainted.plan, outpainted.edit, outpainted.frames(), outpainted.count
        elif images is not None and canvas is not None:
            frames_t = rgb_frames(images, NODE)
            count = int(frames_t.shape[0])
            if count != canvas.num_frames:
                raise node_error(NODE, f"{count} images for a canvas of {canvas.num_frames} frames: connect M3DDM "
                                       "Composite's output for this canvas")
            plan, edit = canvas.plan, canvas.edit
            frames = ((f * 255.0).round().to(torch.uint8).cpu().numpy() for f in frames_t)
        else:
            raise node_error(NODE, "connect the outpainted images with their canvas, or the video of M3DDM Outpaint "
                                   "Video")
        with node_errors(NODE, hint=": connect M3DDM Composite's output for this canvas" if video is None else ""):
            windows = schedule_windows(count, edit.cuts, strides, schedule)
            report = check_quality(frames, plan, edit.cuts, windows, groups=edit.groups, transitions=edit.transitions)
        text = report.text()
        log.info("[%s] %s", NODE, text.replace("\n", " | "))
        plot = torch.from_numpy(report.plot()).float().div(255.0)[None].to(runtime.output_device())
        return io.NodeOutput(text, json.dumps(report.to_dict()), plot, ui={"text": [text]})
