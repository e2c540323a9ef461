"""M3DDM Outpaint Video: VIDEO in, VIDEO out, streamed (long high-resolution videos in bounded memory)."""
from __future__ import annotations

import logging
from fractions import Fraction
from typing import Optional

import numpy as np
import torch
from comfy_api.latest import Input, Types, io

from ..m3ddm_core import (CHOICES, FrameRangeError, OutpaintedFrames, SampleSettings, VideoFileError, open_range,
                          prepare_file, preprocessing_family, sample)

from . import runtime
from .inputs import (M3DDMModelType, PASSES, TARGET, node_schema, plan_for, sampling_inputs, shot_inputs, widget,
                     widgets, working_inputs)
from .layouts import vae_codec
from .validation import node_errors, text_input_problem

log = logging.getLogger("M3DDM")
NODE = "M3DDM_OutpaintVideo"


def upscaler(upscale_model):
    """An UPSCALE_MODEL as ``[k, h, w, 3] -> [k, H, W, 3]`` through ComfyUI's own upscale node (tiling, OOM retry)."""
    if upscale_model is None:
        return None
    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel

    return lambda images: ImageUpscaleWithModel.execute(upscale_model, images).result[0].cpu()


class OutpaintedVideo(Input.Video):
    """ComfyUI's VIDEO over the core's lazy :class:`OutpaintedFrames`: each frame is composited when it is written
    (``save_to``, streamed: bounded memory) or read (``get_components``, for nodes that want an IMAGE batch);
    ``as_trimmed`` narrows the range without decoding anything."""

    def __init__(self, frames: OutpaintedFrames):
        self.outpainted = frames

    def get_dimensions(self) -> tuple[int, int]:
        return self.outpainted.size

    def get_frame_count(self) -> int:
        return self.outpainted.count

    def get_frame_rate(self) -> Fraction:
        return self.outpainted.info.fps

    def get_duration(self) -> float:
        return self.outpainted.duration

    def get_container_format(self) -> str:
        return "mp4"

    def get_bit_depth(self) -> int:
        return 8  # composited in 8 bits; save_to writes 10 when asked

    def get_color_space(self) -> str:
        return self.outpainted.colour_space

    def get_components(self):
        images = torch.from_numpy(np.stack(list(self.outpainted.frames()))).float().div_(255.0)
        audio = self.outpainted.audio()
        audio_dict = None if audio is None else {"waveform": torch.from_numpy(audio[0])[None], "sample_rate": audio[1]}
        return Types.VideoComponents(images=images, audio=audio_dict, frame_rate=self.get_frame_rate())

    def as_trimmed(self, start_time: Optional[float] = None, duration: Optional[float] = None,
                   strict_duration: bool = False) -> Optional["OutpaintedVideo"]:
        trimmed = self.outpainted.trimmed(start_time or 0.0, duration or 0.0, strict_duration)
        return None if trimmed is None else OutpaintedVideo(trimmed)

    def save_to(self, path, format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO, metadata=None,
                bit_depth: Optional[int] = None, crf: Optional[float] = None, color_space: Optional[str] = None,
                preset: Optional[str] = None, **newer):
        if newer:  # a later core asking for more than this pack knows: written without it, and said so
            log.warning("[%s] Save Video passed %s, which this version of the pack does not know: ignored", NODE,
                        ", ".join(f"{k}={v!r}" for k, v in newer.items()))
        report = runtime.count_progress(self.outpainted.count)

        def on_frame(written: int) -> None:
            report(written)
            runtime.check_interrupt()
        # what Save Video asks that cannot be written is refused before a frame is; a failed write says so
        with node_errors(NODE, prefix="Save Video: "), node_errors(NODE, VideoFileError):
            # format and codec: comfy_api's VideoContainer / VideoCodec are str enums, newer Save Videos pass strings
            self.outpainted.write(path, container=format, codec=codec, bit_depth=bit_depth,
                                  crf=crf, colour_space=color_space, preset=preset, metadata=metadata,
                                  on_frame=on_frame, name=NODE)


class M3DDMOutpaintVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            NODE, "M3DDM Outpaint Video",
            description="Outpaints a whole VIDEO (Load Video, or any VIDEO) in bounded memory: frames stream from the "
                        "file into the square working canvas, Coarse-to-Fine sampling runs on latents only, and the "
                        "output VIDEO is composited frame by frame at native resolution while Save Video writes it "
                        "(source audio, frame timing, colours and orientation kept). Interrupted runs resume from the "
                        "last finished pass; edited videos can be outpainted shot by shot.",
            inputs=[
                io.Video.Input("video", tooltip="The source video (core Load Video, or any VIDEO)."),
                M3DDMModelType.Input("m3ddm_model", tooltip="From Load M3DDM Model."),
                io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE."),
                *widgets(*TARGET),
                *sampling_inputs(fps=False),
                *widgets(*PASSES),
                *widgets("feather", "start_frame", "frame_count"),
                *shot_inputs(),
                *working_inputs(),
                widget("setups", optional=True),  # the last widget: older workflows keep their values
                io.UpscaleModel.Input("upscale_model", optional=True,
                                      tooltip="Optional: applied to the generated canvases, a few frames at a time, "
                                              "before compositing (sharper borders on large outputs)."),
            ],
            outputs=[io.Video.Output(display_name="video",
                                     tooltip="The outpainted video, composited while it is saved (Save Video).")],
        )

    @classmethod
    def validate_inputs(cls, aspect_ratio=None) -> bool | str:
        return text_input_problem("aspect_ratio", aspect_ratio)

    @classmethod
    def execute(cls, video, m3ddm_model, vae, target, aspect_ratio, width, height, pad_left, pad_right, pad_top,
                pad_bottom, canvas_mode, scheduler, steps, context_guidance, global_guidance, seed, low_vram, strides,
                schedule, feather, start_frame, frame_count, shots="none", cuts="", preprocessing="auto",
                working_size=CHOICES.working_size, setups="auto", upscale_model=None) -> io.NodeOutput:
        encode, decode = vae_codec(vae, NODE)
        source = video.get_stream_source()
        trim = getattr(video, "get_active_trim_window", lambda: None)()  # current ComfyUI's Video Slice; 0.3.75: none
        with node_errors(NODE, VideoFileError, hint=". Load another video"), \
                node_errors(NODE, FrameRangeError, hint=". Change start_frame / frame_count (or the Video Slice before "
                                                        "this node)"):
            info, start, count = open_range(source, start_frame, frame_count, trim, NODE)
        family = preprocessing_family(preprocessing, m3ddm_model.family)
        plan = plan_for((info.height, info.width), NODE, target, aspect_ratio, width, height, pad_left, pad_right,
                        pad_top, pad_bottom, canvas_mode, video=True, family=family, working_size=working_size)
        settings = SampleSettings.of(scheduler, steps, context_guidance, global_guidance, low_vram)
        with node_errors(NODE):  # a bad schedule or cut is refused before the file is read
            video_job = prepare_file(source, info, start, count, plan, encode, settings, seed=seed,
                                     strides=strides, schedule=schedule, shots=shots, cuts=cuts,
                                     on_chunk=runtime.count_progress(count), groups=setups, name=NODE)
        with runtime.sampling_errors(NODE):
            result = sample(video_job, runtime.comfy_runtime(m3ddm_model, NODE))
        return io.NodeOutput(OutpaintedVideo(OutpaintedFrames(source, info, start, count, plan, result.latents,
                                                              decode, feather, upscaler(upscale_model),
                                                              video_job.plan.cuts, video_job.plan.groups,
                                                              video_job.transitions)))
