"""M3DDM Outpaint Canvas: the target geometry of a video."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..m3ddm_core import CHOICES, FrameCanvas, plan_target, preprocessing_family, preview_canvases, resolve_edit

from .inputs import TARGET, shot_inputs, widget, widgets, working_inputs
from .layouts import rgb_frames
from .types import M3DDMCanvasType
from .validation import node_errors, text_input_problem

NODE = "M3DDM_OutpaintCanvas"
def plan_for(frame_hw: tuple[int, int], node: str, target, aspect_ratio, width, height, pad_left, pad_right,
             pad_top, pad_bottom, canvas_mode, video: bool = False, family: str = "m3ddm",
             working_size: int = CHOICES.working_size):
    """The core's :func:`plan_target` of the target inputs, or a node-named error (``video``: the output becomes a
    video file, so its sides must be even)."""
    with node_errors(node):
        return plan_target(frame_hw, target, ratio=aspect_ratio, size=(height, width),
                           padding=(pad_left, pad_right, pad_top, pad_bottom), mode=canvas_mode,
                           canvas_size=working_size, family=family, video=video)


class M3DDMOutpaintCanvas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="M3DDM Outpaint Canvas",
            category="M3DDM",
            description="Plans the outpainting of a frame sequence: the output size at native resolution and the "
                        "square working canvas the model sees (content centred, border to generate). Outputs a "
                        "preview of the TELEA-prefilled working canvases and their mask (1 = generated). With "
                        "shots, it also splits an edited video at its cuts (the preview then shows the frames on "
                        "both sides of every cut) for Coarse-to-Fine to outpaint shot by shot.",
            inputs=[
                io.Image.Input("images", tooltip="The video frames (IMAGE batch, one frame per item)."),
                *widgets(*TARGET),
                *shot_inputs(),
                *working_inputs(),
                widget("setups", optional=True),  # the last widget: older workflows keep their values
            ],
            outputs=[
                M3DDMCanvasType.Output(display_name="canvas", tooltip="Geometry + source frames for the M3DDM nodes."),
                io.Image.Output(display_name="preview", tooltip="The prefilled working canvases the model starts from "
                                                                "(up to 16 frames spread over the video; with shots, "
                                                                "the two frames around each of up to 16 cuts, each "
                                                                "captioned with its shot, set-up and transition)."),
                io.Mask.Output(display_name="mask", tooltip="Working-canvas mask, 1 = generated, 0 = source content."),
                io.String.Output(display_name="cuts", tooltip="The cuts found or given (first frames of new shots, "
                                                              "e.g. 40, 73; empty: one shot)."),
                io.String.Output(display_name="setups", tooltip="Each shot's camera set-up, e.g. A B A (shots 1 and 3 "
                                                                "share their border); copy it into setups to change "
                                                                "it."),
            ],
        )

    @classmethod
    def validate_inputs(cls, aspect_ratio=None) -> bool | str:
        return text_input_problem("aspect_ratio", aspect_ratio)

    @classmethod
    def execute(cls, images, target, aspect_ratio, width, height, pad_left, pad_right, pad_top, pad_bottom,
                canvas_mode, shots="none", cuts="", preprocessing="auto", working_size=CHOICES.working_size,
                setups="auto") -> io.NodeOutput:
        frames = rgb_frames(images, NODE)
        hw = (int(frames.shape[1]), int(frames.shape[2]))
        plan = plan_for(hw, NODE, target, aspect_ratio, width, height, pad_left, pad_right, pad_top, pad_bottom,
                        canvas_mode, family=preprocessing_family(preprocessing), working_size=working_size)
        with node_errors(NODE):
            edit = resolve_edit(shots, cuts, setups, frames, int(frames.shape[0]), NODE)
        canvas = FrameCanvas.of(frames, plan, edit, preprocessing)
        # both sides of every cut (the first 16), or at most 16 frames: memory stays bounded for long videos
        preview = preview_canvases(frames, plan, edit.cuts, caption=edit.caption if edit.cuts else None)
        mask = torch.from_numpy(plan.pixel_mask()).unsqueeze(0)
        return io.NodeOutput(canvas, preview, mask, ", ".join(map(str, edit.cuts)), edit.labels)
