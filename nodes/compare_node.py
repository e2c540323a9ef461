"""M3DDM Compare: the source letterboxed to the target frame beside the outpainted result, for review."""
from __future__ import annotations

from comfy_api.latest import io

from ..m3ddm_core import compare_frames

from .inputs import widgets
from .layouts import rgb_frames
from .types import M3DDMCanvasType
from .validation import node_errors

NODE = "M3DDM_Compare"


class M3DDMCompare(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="M3DDM Compare",
            category="M3DDM",
            description="Before/after for review and sharing: each source frame letterboxed to the target frame "
                        "(black where the border will be) beside or above the outpainted frame. An IMAGE batch, so "
                        "core Create Video / Save Video write it like any other.",
            inputs=[
                io.Image.Input("images", tooltip="The source frames (the IMAGE given to M3DDM Outpaint Canvas)."),
                io.Image.Input("outpainted", tooltip="The result of M3DDM Composite for the same frames."),
                M3DDMCanvasType.Input("canvas", tooltip="The canvas both were made with."),
                *widgets("layout", "gap"),
            ],
            outputs=[io.Image.Output(display_name="comparison", tooltip="Source | result, one frame per frame.")],
        )

    @classmethod
    def execute(cls, images, outpainted, canvas, layout, gap) -> io.NodeOutput:
        source, result = rgb_frames(images, NODE), rgb_frames(outpainted, NODE)
        with node_errors(NODE, hint=". Connect the source IMAGE, its M3DDM Composite result and their canvas"):
            return io.NodeOutput(compare_frames(source, result.to(source.device), canvas.plan, layout, gap))
