"""M3DDM Composite: native-resolution result with the original pixels untouched."""
from __future__ import annotations

from comfy_api.latest import io

from ..m3ddm_core import composite

from .inputs import widget
from .layouts import rgb_frames, with_channels
from .types import M3DDMCanvasType
from .validation import node_error, node_errors

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
                io.Image.Input("images",
                               tooltip="The original frames (the same IMAGE given to M3DDM Outpaint Canvas)."),
                io.Image.Input("generated", tooltip="Generated canvases from an M3DDM sampler, at any resolution "
                                                    "(e.g. after an upscale model)."),
                M3DDMCanvasType.Input("canvas", tooltip="The canvas the frames were generated with."),
                widget("feather"),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="Outpainted frames at native resolution.")],
        )

    @classmethod
    def execute(cls, images, generated, canvas, feather) -> io.NodeOutput:
        with node_errors(NODE, hint="; connect the same IMAGE to M3DDM Outpaint Canvas and to this node"):
            canvas.check_source(rgb_frames(images, NODE))
        gen = with_channels(rgb_frames(generated, NODE), images.shape[-1])
        (gh, gw), (ch, cw) = gen.shape[1:3], canvas.plan.canvas_hw
        if abs(gh / gw - ch / cw) > 0.02:
            raise node_error(NODE, f"generated frames are {gw}x{gh}, not the {cw}x{ch} working canvas (or an upscale "
                                   "of it); crop or resize nodes in between break the geometry")
        with node_errors(NODE, hint="; connect the sampler's full output for this canvas"):
            return io.NodeOutput(composite(images, gen.to(images.device), canvas.plan, feather))
