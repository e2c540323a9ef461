"""Whole videos in bounded memory, on the way out: the composite streamed frame by frame into a file.

Frames are encoded as they stream in by :func:`m3ddm_core.pipeline.encode.encode_video`; here the sampled latents are decoded a few
frames at a time, composited onto the source frames read again, and written. Native-resolution frames and decoded
canvases exist one chunk at a time.
"""
from __future__ import annotations

from contextlib import closing
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from ..pipeline.canvas import CanvasPlan
from ..pipeline.composite import CompositeLayout, composite
from ..pipeline.encode import chunks
from ..pipeline.heap import release_freed_memory
from ..pipeline.passes import DecodeFn
from ..pipeline.transitions import BorderBlend, Transition
from .video_io import VideoInfo, VideoWriter, audio_track, read_frames

# Latents decoded (and upscaled) per VAE call while streaming out: a VAE decoder's last layers hold 64-128 channels
# at the 256x256 canvas, so 8 at a time held ~0.25 GB more than 4 (measured, 1080p -> 9:16 through ComfyUI).
DECODE_BATCH = 4
UpscaleFn = Callable[[torch.Tensor], torch.Tensor]  # [k, h, w, 3] float 0..1 -> [k, H', W', 3] float 0..1


def composite_frames(frames: Iterable[np.ndarray], latents: torch.Tensor, plan: CanvasPlan, decode: DecodeFn,
                     feather: int = 8, batch: int = DECODE_BATCH, upscale: Optional[UpscaleFn] = None,
                     transitions: Sequence[Transition] = ()) -> Iterator[np.ndarray]:
    """Yield the outpainted frames ``[OH, OW, 3]`` uint8, one at a time: ``frames`` (the source, ``[H, W, 3]``
    uint8, streamed) with their borders decoded from ``latents`` ``[N, 4, h, w]`` ``batch`` frames at a time,
    optionally upscaled, and composited one frame at a time on a reused buffer (a 9:16 1080p output frame is
    79 MB in float32, so a whole chunk of them is not kept). Original pixels come out unchanged. The borders of
    ``transitions`` (dissolves, fades) are blended before the upscale (:class:`.transitions.BorderBlend`; its two
    held frames of each are decoded once more)."""
    n, done = latents.shape[0], 0
    buffer = torch.empty((1, *plan.output_hw, 3), dtype=torch.float32)
    layout = CompositeLayout(plan, feather)
    blend = BorderBlend(transitions, n, lambda f: decode(latents[f:f + 1]).float().cpu().clamp(0, 1)[0])
    for chunk in chunks(frames, batch):
        k = len(chunk)
        if done + k > n:
            raise ValueError(f"more source frames than the {n} sampled ones")
        with torch.no_grad():
            generated = decode(latents[done:done + k]).float().cpu().clamp(0, 1)
            if blend.applies():
                generated = torch.stack([blend(done + j, g) for j, g in enumerate(generated)])
            if upscale is not None:
                generated = upscale(generated).float().cpu().clamp(0, 1)
        for i, source in enumerate(chunk):
            original = torch.from_numpy(source).float().div_(255.0).unsqueeze(0)
            out = composite(original, generated[i:i + 1], plan, feather, out=buffer, layout=layout)
            # x/255*255 rounds back to the same integer: the original region stays bit-exact.
            yield out[0].mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
        done += k
        del chunk, generated
        release_freed_memory()
    if done != n:
        raise ValueError(f"{done} source frames for {n} sampled ones")


def write_outpainted(path, source, info: VideoInfo, start: int, count: int, plan: CanvasPlan, latents: torch.Tensor,
                     decode: DecodeFn, feather: int = 8, upscale: Optional[UpscaleFn] = None,
                     metadata: Optional[dict] = None, on_frame: Optional[Callable[[int], None]] = None,
                     batch: int = DECODE_BATCH, codec: str = "h264", container_format: str = "mp4", crf: float = 18,
                     preset: str = "medium", bit_depth: int = 8, transitions: Sequence[Transition] = ()) -> None:
    """Write the outpainted frames ``start .. start+count-1`` of ``source`` (a file or stream, probed as ``info``)
    to ``path`` as H.264 (or HEVC, AV1; ``crf``, ``preset``, ``bit_depth``, in an MP4 or another
    ``container_format`` FFmpeg muxes) with the source's audio of that range: each source frame read, its border
    decoded from ``latents`` ``[count, 4, h, w]`` ``batch`` frames at a time, optionally upscaled, composited and
    encoded. The output keeps what a player shows of the source: its colour matrix, range and tags, its frame
    timing (a variable-frame-rate source keeps every timestamp) and its audio layout. ``on_frame(written)`` runs
    after every frame (progress; raising stops the write). The file appears only when complete
    (:class:`.video_io.VideoWriter`)."""
    oh, ow = plan.output_hw
    # read as the video is written, on the frames' own clock (an offset or variable-rate video stays in sync)
    audio = audio_track(source, info.time_of(start), info.time_of(start + count))
    time_base, pts = info.frame_pts(start, count) if info.vfr else (None, None)
    frames = composite_frames(read_frames(source, start, count), latents, plan, decode, feather, batch, upscale,
                              transitions)
    # closing: a failed write lets go of the source at once, not when the traceback is collected
    with closing(frames), VideoWriter(path, info.fps, ow, oh, audio=audio, container_format=container_format,
                                      metadata=metadata, colour=info.colour, pts=pts, time_base=time_base,
                                      codec=codec, crf=crf, preset=preset, bit_depth=bit_depth) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame)
            if on_frame is not None:
                on_frame(i + 1)
