"""M3DDM Outpaint Video: VIDEO in, VIDEO out, streamed (long high-resolution videos in bounded memory)."""
from __future__ import annotations

import logging
from fractions import Fraction
from typing import Optional

import numpy as np
import torch
from comfy_api.latest import Input, Types, io

from ..m3ddm_core import (BIT_DEPTHS, CONTAINERS, H264_PRESETS, CutDetector, VideoFileError, VideoInfo, check_range,
                          colour_space_name, composite_frames, encode_video, frames_in_window, probe, read_audio,
                          read_frames, source_identity, source_notes, write_outpainted)

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


def trim_window(video, info: VideoInfo) -> Optional[tuple[int, int]]:
    """``(first frame, frames)`` of the source a trimmed VIDEO shows (current ComfyUI's Video Slice keeps the whole
    file and a trim window beside it), None when it is not trimmed; 0.3.75's VIDEO has no trim."""
    start_time, duration = getattr(video, "get_active_trim_window", lambda: (0.0, 0.0))()
    if not start_time and not duration:
        return None
    window = frames_in_window(info, 0, info.frames, start_time, duration)
    if window is None:
        raise ValueError(f"[{NODE}] the video is trimmed to {start_time:g} s + {duration:g} s, where the source "
                         f"({info.duration:.3f} s) shows no frame: change the Video Slice before this node")
    return window


def _option(value) -> str:
    """A comfy_api enum member (VideoContainer, VideoCodec) or the plain string newer Save Videos pass."""
    return str(getattr(value, "value", value)).lower()


def encoding(format, codec, bit_depth, crf, color_space, preset, colour) -> dict:
    """What core Save Video asks of ``save_to`` -> the writer's options, each honoured or refused with the fix:
    container auto/mp4/mkv, codec auto (H.264)/h264/av1, bit depth 8 (native: composited in 8 bits) or 10, crf,
    x264 preset, and a colour space, which must be the source's (the output keeps the source's colours, as core
    keeps a file's own)."""
    container, codec = _option(format), _option(codec)
    if container not in ("auto", *CONTAINERS):
        raise ValueError(f"[{NODE}] cannot write {container}: choose format auto, mp4 or mkv on Save Video")
    if codec not in ("auto", "h264", "av1"):
        raise ValueError(f"[{NODE}] cannot encode {codec}: choose codec auto, h264 or av1 on Save Video")
    codec = "h264" if codec == "auto" else codec
    depth = 8 if bit_depth is None else int(bit_depth)
    if depth not in BIT_DEPTHS:
        raise ValueError(f"[{NODE}] cannot write {depth}-bit video: choose bit depth 8 or 10")
    top = 63 if codec == "av1" else 51
    if crf is not None and not 0 <= float(crf) <= top:
        raise ValueError(f"[{NODE}] crf {crf} is outside {codec}'s 0-{top}; lower is better quality")
    if preset is not None and codec == "h264" and preset not in H264_PRESETS:
        raise ValueError(f"[{NODE}] {preset!r} is no H.264 preset; choose one of {', '.join(H264_PRESETS)}")
    own = colour_space_name(colour)
    if color_space is not None and color_space not in ("auto", own):
        raise ValueError(f"[{NODE}] the output keeps the source's colours, {own} ({colour.describe()}), and does "
                         f"not convert them to {color_space}: choose colour space auto or {own}")
    return {"container_format": CONTAINERS.get(container, "mp4"), "codec": codec, "bit_depth": depth,
            "crf": 18 if crf is None else float(crf), "preset": preset or "medium"}


class OutpaintedVideo(Input.Video):
    """The outpainted video, computed lazily: each frame is composited when it is written (or read).

    Holds the sampled latents (32 KiB per frame) and the source; ``save_to`` streams source frame -> VAE-decoded
    border (a few frames per VAE call) -> optional upscale -> composite -> encoder, with the source's audio trimmed
    to the range; ``as_trimmed`` narrows the range (nothing decoded). ``get_components`` materializes the frames
    for nodes that want an IMAGE batch.
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

    def get_bit_depth(self) -> int:
        return 8  # composited in 8 bits; save_to writes 10 when asked

    def get_color_space(self) -> str:
        return colour_space_name(self.info.colour)

    def get_components(self):
        images = torch.from_numpy(np.stack(list(self.frames()))).float().div_(255.0)
        audio = self.audio()
        audio_dict = None if audio is None else {"waveform": torch.from_numpy(audio[0])[None], "sample_rate": audio[1]}
        return Types.VideoComponents(images=images, audio=audio_dict, frame_rate=self.fps)

    def as_trimmed(self, start_time: Optional[float] = None, duration: Optional[float] = None,
                   strict_duration: bool = False) -> Optional["OutpaintedVideo"]:
        """The frames shown from ``start_time`` seconds (negative: from the end) for ``duration`` seconds (0 or
        None: to the end), as another lazy video over the same latents; None when no frame is left, or when
        ``strict_duration`` and fewer than ``duration`` seconds remain (core's rules)."""
        start_time, duration = start_time or 0.0, duration or 0.0
        if duration < 0:
            return None
        origin = self.info.time_of(self.start)
        window = frames_in_window(self.info, self.start, self.count, start_time, duration, origin)
        if window is None:
            return None
        start, count = window
        if strict_duration and duration and self.info.time_of(self.start + self.count) - self.info.time_of(start) \
                < duration - 1e-6:
            return None
        skip = start - self.start
        cuts = [c - skip for c in self.cuts if skip < c < skip + count]
        return OutpaintedVideo(self.source, self.info, start, count, self.plan, self.latents[skip:skip + count],
                               self.decode, self.feather, self.upscale, cuts)

    def save_to(self, path, format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO, metadata=None,
                bit_depth: Optional[int] = None, crf: Optional[float] = None, color_space: Optional[str] = None,
                preset: Optional[str] = None, **newer):
        if newer:  # a later core asking for more than this pack knows: written without it, and said so
            log.warning("[%s] Save Video passed %s, which this version of the pack does not know: ignored", NODE,
                        ", ".join(f"{k}={v!r}" for k, v in newer.items()))
        options = encoding(format, codec, bit_depth, crf, color_space, preset, self.info.colour)
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
                             self.decode, self.feather, self.upscale, metadata, on_frame, **options)


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
            start, count = check_range(info, start_frame, frame_count, trim_window(video, info))
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
