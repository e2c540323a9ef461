"""M3DDM Evaluate: the papers' protocol on the user's own footage -- borders masked, outpainted back, measured."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..m3ddm_core import CHOICES, SampleSettings, evaluation_task, sample

from . import runtime
from .inputs import PASSES, sampling_inputs, widget, widgets
from .layouts import rgb_frames, vae_codec
from .types import M3DDMModelType
from .validation import node_errors

log = logging.getLogger("M3DDM")
NODE = "M3DDM_Evaluate"


class M3DDMEvaluate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="M3DDM Evaluate",
            category="M3DDM",
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
        encode, decode = vae_codec(vae, NODE)
        settings = SampleSettings.of(scheduler, steps, context_guidance, global_guidance, low_vram)
        with node_errors(NODE):
            task = evaluation_task(rgb_frames(images, NODE), mask_ratio, direction, paper_size, working_size,
                                   m3ddm_model.family)
            video = task.canvas.prepare(None, encode, settings, fps, seed=seed, strides=strides, schedule=schedule)
        with runtime.sampling_errors(NODE):
            result = sample(video, runtime.comfy_runtime(m3ddm_model, NODE), decode=decode)
        outpainted, metrics = task.score(result.canvases)
        report = task.report(metrics, settings, seed)
        log.info("[%s] %s", NODE, report.replace("\n", " | "))
        device = runtime.output_device()
        figures = {"region": metrics.region, "frame": metrics.frame, "missing": metrics.missing}
        return io.NodeOutput(report, outpainted.to(device), task.truth.to(device),
                             ui={"text": [report], "metrics": [figures]})
