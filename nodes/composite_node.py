"""M3DDM Composite: native-resolution result with the original pixels untouched."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..m3ddm_core import composite

from .layouts import rgb_frames
from .validation import node_error
from .types import M3DDMCanvasType, video_fingerprint

NODE = "M3DDM_Composite"


class M3DDMComposite(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="M3DDM Composite",
            category="M3DDM",
            description="Places the original frames, pixel for pixel, into the generated border at native "
                        "resolution: the generated canvases (straight from the sampler or after any upscaler) are "
                        "resampled to the output size, the originals pasted back unchanged, and the seam feathered "
                        "on the generated side only. Output is cropped to the target.",
            inputs=[
                io.Image.Input("images", tooltip="The original frames (the same IMAGE given to M3DDM Outpaint Canvas)."),
                io.Image.Input("generated", tooltip="Generated canvases from an M3DDM sampler, at any resolution "
                                                    "(e.g. after an upscale model)."),
                M3DDMCanvasType.Input("canvas", tooltip="The canvas the frames were generated with."),
                io.Int.Input("feather", default=8, min=0, max=256,
                             tooltip="Width in output pixels of the blend from the frame edge into the generated border."),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="Outpainted frames at native resolution.")],
        )

    @classmethod
    def execute(cls, images, generated, canvas, feather) -> io.NodeOutput:
        plan = canvas.plan
        if images.ndim != 4 or tuple(images.shape[1:3]) != tuple(plan.frame_hw):
            raise node_error(NODE, f"the original frames are {tuple(images.shape)}; the canvas was planned for "
                                   f"{plan.frame_hw[1]}x{plan.frame_hw[0]} frames. Connect the same IMAGE as to the canvas.")
        if video_fingerprint(images) != canvas.video_id:
            raise node_error(NODE, "these original frames are not the ones the canvas was made from; connect the same "
                                   "IMAGE to M3DDM Outpaint Canvas and to this node")
        if generated.shape[0] != images.shape[0]:
            raise node_error(NODE, f"{generated.shape[0]} generated frames for {images.shape[0]} original frames; "
                                   "connect the full output of the sampler for this video")
        gen = rgb_frames(generated, NODE)
        ch, cw = plan.canvas_hw
        if abs(gen.shape[1] / gen.shape[2] - ch / cw) > 0.02:
            raise node_error(NODE, f"generated frames are {gen.shape[2]}x{gen.shape[1]}, not the {cw}x{ch} working "
                                   "canvas (or an upscale of it); crop or resize nodes in between break the geometry")
        if images.shape[-1] != 3:
            gen = _match_channels(gen, images.shape[-1])
        return io.NodeOutput(composite(images, gen.to(images.device), plan, feather))


def _match_channels(gen: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 1:
        return gen.mean(dim=-1, keepdim=True)
    alpha = torch.ones(*gen.shape[:-1], 1, dtype=gen.dtype, device=gen.device)
    return torch.cat([gen, alpha], dim=-1)
