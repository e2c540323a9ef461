"""M3DDM Outpaint Canvas, Composite and Compare: a video's target geometry, and the frames at native resolution
once its border is generated (the original pixels untouched), alone or beside the source."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..m3ddm_core import (CHOICES, FrameCanvas, compare_frames, composite, preprocessing_family, preview_canvases,
                          resolve_edit)

from .inputs import M3DDMCanvasType, TARGET, node_schema, plan_for, shot_inputs, widget, widgets, working_inputs
from .layouts import rgb_frames, with_channels
from .validation import node_error, node_errors, text_input_problem


class M3DDMOutpaintCanvas(io.ComfyNode):
    NODE = "M3DDM_OutpaintCanvas"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls.NODE, "M3DDM Outpaint Canvas",
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
        frames = rgb_frames(images, cls.NODE)
        hw = (int(frames.shape[1]), int(frames.shape[2]))
        plan = plan_for(hw, cls.NODE, target, aspect_ratio, width, height, pad_left, pad_right, pad_top, pad_bottom,
                        canvas_mode, family=preprocessing_family(preprocessing), working_size=working_size)
        with node_errors(cls.NODE):
            edit = resolve_edit(shots, cuts, setups, frames, int(frames.shape[0]), cls.NODE)
        canvas = FrameCanvas.of(frames, plan, edit, preprocessing)
        # both sides of every cut (the first 16), or at most 16 frames: memory stays bounded for long videos
        preview = preview_canvases(frames, plan, edit.cuts, caption=edit.caption if edit.cuts else None)
        mask = torch.from_numpy(plan.pixel_mask()).unsqueeze(0)
        return io.NodeOutput(canvas, preview, mask, ", ".join(map(str, edit.cuts)), edit.labels)


class M3DDMComposite(io.ComfyNode):
    NODE = "M3DDM_Composite"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls.NODE, "M3DDM Composite",
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
        with node_errors(cls.NODE, hint="; connect the same IMAGE to M3DDM Outpaint Canvas and to this node"):
            canvas.check_source(rgb_frames(images, cls.NODE))
        gen = with_channels(rgb_frames(generated, cls.NODE), images.shape[-1])
        (gh, gw), (ch, cw) = gen.shape[1:3], canvas.plan.canvas_hw
        if abs(gh / gw - ch / cw) > 0.02:
            raise node_error(cls.NODE, f"generated frames are {gw}x{gh}, not the {cw}x{ch} working canvas (or an "
                                       "upscale of it); crop or resize nodes in between break the geometry")
        with node_errors(cls.NODE, hint="; connect the sampler's full output for this canvas"):
            return io.NodeOutput(composite(images, gen.to(images.device), canvas.plan, feather))


class M3DDMCompare(io.ComfyNode):
    NODE = "M3DDM_Compare"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls.NODE, "M3DDM Compare",
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
        source, result = rgb_frames(images, cls.NODE), rgb_frames(outpainted, cls.NODE)
        with node_errors(cls.NODE, hint=". Connect the source IMAGE, its M3DDM Composite result and their canvas"):
            return io.NodeOutput(compare_frames(source, result.to(source.device), canvas.plan, layout, gap))
