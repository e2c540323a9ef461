"""M3DDM Outpaint Video: VIDEO in, VIDEO out, streamed (long high-resolution videos in bounded memory)."""
from __future__ import annotations

import logging
from fractions import Fraction
from typing import Optional

import numpy as np
import torch
from comfy_api.latest import Input, Types, io

from ..m3ddm_core import (CutDetector, VideoFileError, VideoInfo, check_range, composite_frames, encode_video,
                          probe, read_audio, read_frames, source_identity, source_notes, write_outpainted)

from . import runtime
from .canvas_node import TARGETS, plan_family, plan_for, target_inputs, working_inputs
from .layouts import check_sd_vae, node_errors, text_input_problems, vae_decoder, vae_encoder
from .sampler_nodes import pass_inputs, sample_encoded, sampling_inputs, sampling_settings, video_plan
from .shots import SHOTS, resolve_cuts, shot_inputs
from .types import M3DDMModelType

log = logging.getLogger("M3DDM")
NODE = "M3DDM_OutpaintVideo"


def upscaler(upscale_model):
    """An UPSCALE_MODEL as ``[k, h, w, 3] -> [k, H, W, 3]`` through ComfyUI's own upscale node (tiling, OOM retry)."""
    if upscale_model is None:
        return None
    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel

    return lambda images: ImageUpscaleWithModel.execute(upscale_model, images).result[0].cpu()


class OutpaintedVideo(Input.Video):
    """The outpainted video, computed lazily: each frame is composited when it is written (or read).

    Holds the sampled latents (32 KiB per frame) and the source; ``save_to`` streams source frame -> VAE-decoded
    border (a few frames per VAE call) -> optional upscale -> composite -> H.264, with the source's audio trimmed to
    the range. ``get_components`` materializes the frames for nodes that want an IMAGE batch.
    """

    def __init__(self, source, info: VideoInfo, start: int, count: int, plan, latents: torch.Tensor, decode,
                 feather: int, upscale=None, cuts=()):
        self.source, self.info, self.start, self.count, self.fps = source, info, start, count, info.fps
        self.plan, self.latents, self.decode, self.feather, self.upscale = plan, latents, decode, feather, upscale
        self.cuts = tuple(cuts)  # first frames of new shots, counted from ``start`` (M3DDM Quality Check reads them)

    def frames(self):
        """The output frames ``[OH, OW, 3]`` uint8, one at a time."""
        return composite_frames(read_frames(self.source, self.start, self.count), self.latents, self.plan,
                                self.decode, self.feather, upscale=self.upscale)

    def audio(self) -> Optional[tuple[np.ndarray, int]]:
        return read_audio(self.source, self.info.time_of(self.start), self.info.time_of(self.start + self.count))

    def get_dimensions(self) -> tuple[int, int]:
        return self.plan.output_hw[1], self.plan.output_hw[0]

    def get_frame_count(self) -> int:
        return self.count

    def get_frame_rate(self) -> Fraction:
        return self.fps

    def get_duration(self) -> float:
        return float(self.info.time_of(self.start + self.count) - self.info.time_of(self.start))

    def get_container_format(self) -> str:
        return "mp4"

    def get_components(self):
        images = torch.from_numpy(np.stack(list(self.frames()))).float().div_(255.0)
        audio = self.audio()
        audio_dict = None if audio is None else {"waveform": torch.from_numpy(audio[0])[None], "sample_rate": audio[1]}
        return Types.VideoComponents(images=images, audio=audio_dict, frame_rate=self.fps)

    def save_to(self, path, format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO, metadata=None):
        if codec not in (Types.VideoCodec.AUTO, Types.VideoCodec.H264):
            raise ValueError(f"[{NODE}] writes H.264 only; choose codec auto or h264")
        if format not in (Types.VideoContainer.AUTO, Types.VideoContainer.MP4):
            raise ValueError(f"[{NODE}] writes MP4 only; choose format auto or mp4")
        report = runtime.count_progress(self.count)

        def on_frame(written: int) -> None:
            report(written)
            if written % max(1, self.count // 10) == 0:
                log.info("[%s] wrote %d of %d frames", NODE, written, self.count)
            runtime.check_interrupt()
        with node_errors(NODE, VideoFileError, prefix="writing the video failed: "), \
                node_errors(NODE, OSError, prefix="writing the video failed: ",
                            hint="; nothing was left behind. Free disk space or choose another output folder"):
            write_outpainted(path, self.source, self.info, self.start, self.count, self.plan, self.latents,
                             self.decode, self.feather, self.upscale, metadata, on_frame)


class M3DDMOutpaintVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="M3DDM Outpaint Video",
            category="M3DDM",
            description="Outpaints a whole VIDEO (Load Video, or any VIDEO) in bounded memory: frames stream from the "
                        "file into the square working canvas, Coarse-to-Fine sampling runs on latents only, and the "
                        "output VIDEO is composited frame by frame at native resolution while Save Video writes it "
                        "(source audio, frame timing, colours and orientation kept). Interrupted runs resume from the last finished pass; edited "
                        "videos can be outpainted shot by shot.",
            inputs=[
                io.Video.Input("video", tooltip="The source video (core Load Video, or any VIDEO)."),
                M3DDMModelType.Input("m3ddm_model", tooltip="From Load M3DDM Model."),
                io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE."),
                *target_inputs(),
                *sampling_inputs(fps=False),
                *pass_inputs(),
                io.Int.Input("feather", default=8, min=0, max=256,
                             tooltip="Seam blend width in output pixels, on the generated side only."),
                io.Int.Input("start_frame", default=0, min=0, max=10_000_000,
                             tooltip="First frame of the source to outpaint (0 = the beginning)."),
                io.Int.Input("frame_count", default=0, min=0, max=10_000_000,
                             tooltip="How many frames from start_frame; 0 = to the end of the video."),
                *shot_inputs(),
                *working_inputs(),
                io.UpscaleModel.Input("upscale_model", optional=True,
                                      tooltip="Optional: applied to the generated canvases, a few frames at a time, "
                                              "before compositing (sharper borders on large outputs)."),
            ],
            outputs=[io.Video.Output(display_name="video",
                                     tooltip="The outpainted video, composited while it is saved (Save Video).")],
        )

    @classmethod
    def validate_inputs(cls, target=None, aspect_ratio=None, shots=None, cuts=None) -> bool | str:
        return text_input_problems(aspect_ratio=aspect_ratio, target=target, targets=TARGETS, shots=shots,
                                   shot_options=SHOTS, cuts=cuts)

    @classmethod
    def execute(cls, video, m3ddm_model, vae, target, aspect_ratio, width, height, pad_left, pad_right, pad_top,
                pad_bottom, canvas_mode, scheduler, steps, context_guidance, global_guidance, seed, low_vram, strides,
                schedule, feather, start_frame, frame_count, shots="none", cuts="", preprocessing="auto",
                working_size=256, upscale_model=None) -> io.NodeOutput:
        check_sd_vae(vae, NODE)
        source = video.get_stream_source()
        with node_errors(NODE, VideoFileError, hint=". Load another video"):
            info = probe(source)
        with node_errors(NODE, VideoFileError, hint=". Change start_frame / frame_count"):
            start, count = check_range(info, start_frame, frame_count)
        for level, note in source_notes(info):
            log.log(level, "[%s] %s", NODE, note)
        family = plan_family(preprocessing, NODE, m3ddm_model)
        plan = plan_for((info.height, info.width), NODE, target, aspect_ratio, width, height, pad_left, pad_right,
                        pad_top, pad_bottom, canvas_mode, video=True, family=family, working_size=working_size)
        settings = sampling_settings(scheduler, steps, context_guidance, global_guidance, seed, low_vram)
        detector = CutDetector() if shots == "detect" else None
        # the plan is made once, before any decoding or model loading -- after the stream when cuts are detected
        passes = None if detector else video_plan(NODE, count, resolve_cuts(shots, cuts, (), count, NODE), strides,
                                                  schedule, settings)
        log.info("[%s] %d frames %dx%d at %.3f fps -> %dx%d; encoding the working canvases", NODE, count, info.width,
                 info.height, float(info.fps), plan.output_hw[1], plan.output_hw[0])
        frames = read_frames(source, start, count)
        if detector is not None:  # cuts found in the same pass over the file as the encoding
            frames = detector.watching(frames)
        with node_errors(NODE, VideoFileError, prefix="reading the video failed: "):
            encoded = encode_video(frames, count, plan, vae_encoder(vae), detector.cuts if detector else passes.cuts,
                                   on_chunk=runtime.count_progress(count))
        if detector is not None:
            log.info("[%s] %d shot(s); cuts at frames %s", NODE, len(encoded.cuts) + 1, list(encoded.cuts) or "none")
            passes = video_plan(NODE, count, encoded.cuts, strides, schedule, settings)
        result, _ = sample_encoded(NODE, m3ddm_model, encoded, passes, source_identity(source, start, count),
                                   settings, float(info.fps), strides, schedule)
        return io.NodeOutput(OutpaintedVideo(source, info, start, count, plan, result.latents, vae_decoder(vae),
                                             feather, upscaler(upscale_model), encoded.cuts))
