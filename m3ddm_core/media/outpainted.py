"""A video file through the pipeline and back: what the streamed node (M3DDM Outpaint Video) and the batch command
share.

:func:`open_range` probes a file and picks the frames to outpaint (a start, a count, a trim window);
:func:`prepare_file` plans their canvas and encodes them while the file streams in (the pipeline's
:func:`..pipeline.outpaint.prepare`); :class:`OutpaintedFrames` is the sampled result as a lazy video: every frame
composited when it is read or written, a trim a view of the same latents. :func:`writer_options` checks what a
caller asks of the encoder (``OutpaintedFrames.write`` calls it).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from ..pipeline.canvas import CanvasPlan
from ..pipeline.encode import EncodeFn
from ..pipeline.inputs import Edit, resolve_edit
from ..pipeline.outpaint import PreparedVideo, prepare
from ..pipeline.passes import DecodeFn, SampleSettings
from ..pipeline.resume import source_identity
from ..pipeline.schedule import Strides
from ..pipeline.shots import shot_bounds
from .stream import UpscaleFn, composite_frames, write_outpainted
from .video_io import (BIT_DEPTHS, CONTAINERS, H264_PRESETS, Colour, FrameRangeError, Source, VideoFileError, VideoInfo,
                       check_range, colour_space_name, frames_in_window, probe, read_audio, read_frames)

log = logging.getLogger("M3DDM")


def open_range(source: Source, start_frame: int = 0, frame_count: int = 0,
               trim: Optional[tuple[float, float]] = None, name: str = "M3DDM") -> tuple[VideoInfo, int, int]:
    """``(info, start, count)``: the file probed and the frames to use -- ``frame_count`` from ``start_frame`` (0:
    to the end), counted inside ``trim`` = ``(start seconds, duration seconds)`` when the video is trimmed (as
    ComfyUI's Video Slice leaves it). Raises VideoFileError for a file that cannot be read, FrameRangeError (one)
    for frames it does not have. What the output does with the source that a user should know is logged, led by
    ``name``."""
    info = probe(source)
    for level, note in info.notes():
        log.log(level, "[%s] %s", name, note)
    window = None
    if trim is not None and (trim[0] or trim[1]):
        window = frames_in_window(info, 0, info.frames, trim[0], trim[1])
        if window is None:
            raise FrameRangeError(f"the video is trimmed to {trim[0]:g} s + {trim[1]:g} s, where the source "
                                  f"({info.duration:.3f} s) shows no frame: trim it to a part the source has")
    start, count = check_range(info, start_frame, frame_count, window)
    return info, start, count


def prepare_file(source: Source, info: VideoInfo, start: int, count: int, canvas: CanvasPlan, encode: EncodeFn,
                 settings: SampleSettings, *, seed: int = 0, strides: Strides = "auto", schedule: str = "fixed",
                 shots: str = "none", cuts: Union[str, Sequence[int]] = (), resumable: bool = True,
                 on_chunk: Optional[Callable[[int], None]] = None, groups=None, name: str = "M3DDM") -> PreparedVideo:
    """Frames ``start .. start+count-1`` of ``source`` planned and encoded as they stream in. ``shots``
    (:data:`.pipeline.inputs.SHOT_MODES`): ``none``, ``detect`` (hard cuts, dissolves and fades found on the way)
    or ``list`` (``cuts``: first frames of new shots counted from ``start``, as a list or the text a user writes,
    checked before a frame is read); ``resumable``: the file's identity keys the run's pass store; ``groups``:
    returning camera set-ups (:func:`.pipeline.outpaint.prepare`). The work and the shots are logged, led by
    ``name``; a frame that cannot be read raises VideoFileError saying so."""
    detect = shots == "detect"
    if not detect:
        listed = cuts if isinstance(cuts, str) else ", ".join(map(str, cuts))
        cuts = resolve_edit(shots, listed, "none", (), count).cuts
    log.info("[%s] %d frames %dx%d at %.3f fps -> %dx%d; encoding the working canvases", name, count, info.width,
             info.height, float(info.fps), canvas.output_hw[1], canvas.output_hw[0])
    try:
        video = prepare(read_frames(source, start, count), count, canvas, encode, settings, info.fps, seed=seed,
                        strides=strides, schedule=schedule, cuts=() if detect else cuts, detect_cuts=detect,
                        content=source_identity(source, start, count) if resumable else None, on_chunk=on_chunk,
                        groups=groups, detect_transitions=detect)
    except VideoFileError as exc:
        raise VideoFileError(f"reading the video failed: {exc}") from exc
    if shots != "none":
        video.edit.log(name)
    return video


def writer_options(container: str = "auto", codec: str = "auto", bit_depth: Optional[int] = None,
                   crf: Optional[float] = None, colour_space: Optional[str] = None, preset: Optional[str] = None,
                   colour: Optional[Colour] = None) -> dict:
    """What a caller asks of the encoder -> :func:`.stream.write_outpainted`'s options, each honoured or refused
    (ValueError) with the fix: container auto/mp4/mkv, codec auto (H.264)/h264/av1, bit depth 8 (native: composited
    in 8 bits) or 10, crf, x264 preset, and a colour space, which must be the source's (the output keeps the
    source's colours)."""
    container, codec = container.lower(), codec.lower()
    if container not in ("auto", *CONTAINERS):
        raise ValueError(f"cannot write {container}: choose format auto, mp4 or mkv")
    if codec not in ("auto", "h264", "av1"):
        raise ValueError(f"cannot encode {codec}: choose codec auto, h264 or av1")
    codec = "h264" if codec == "auto" else codec
    depth = 8 if bit_depth is None else int(bit_depth)
    if depth not in BIT_DEPTHS:
        raise ValueError(f"cannot write {depth}-bit video: choose bit depth 8 or 10")
    top = 63 if codec == "av1" else 51
    if crf is not None and not 0 <= float(crf) <= top:
        raise ValueError(f"crf {crf} is outside {codec}'s 0-{top}; lower is better quality")
    if preset is not None and codec == "h264" and preset not in H264_PRESETS:
        raise ValueError(f"{preset!r} is no H.264 preset; choose one of {', '.join(H264_PRESETS)}")
    own = colour_space_name(colour)
    if colour_space is not None and colour_space not in ("auto", own):
        raise ValueError(f"the output keeps the source's colours, {own} ({colour.describe()}), and does not convert "
                         f"them to {colour_space}: choose colour space auto or {own}")
    return {"container_format": CONTAINERS.get(container, "mp4"), "codec": codec, "bit_depth": depth,
            "crf": 18 if crf is None else float(crf), "preset": preset or "medium"}


@dataclass(frozen=True)
class OutpaintedFrames:
    """Frames ``start .. start+count-1`` of ``source`` outpainted, computed lazily: ``latents`` ``[count, 4, h, w]``
    (32 KiB a frame) decoded, optionally upscaled and composited onto the source frame by frame as they are read
    or written. ``cuts``: first frames of new shots, counted from ``start``."""

    source: Source
    info: VideoInfo
    start: int
    count: int
    plan: CanvasPlan
    latents: torch.Tensor
    decode: DecodeFn
    feather: int = 8
    upscale: Optional[UpscaleFn] = None
    cuts: tuple = ()
    groups: Optional[tuple] = None  # each shot's camera set-up (the first shot of it); None: each its own
    transitions: tuple = ()  # dissolves and fades, counted from ``start``: their borders are blended

    @property
    def edit(self) -> Edit:
        """How the video is cut (counted from ``start``)."""
        return Edit(tuple(self.cuts), tuple(self.transitions), None if self.groups is None else tuple(self.groups))

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the output."""
        return self.plan.output_hw[1], self.plan.output_hw[0]

    @property
    def duration(self) -> float:
        return float(self.info.time_of(self.start + self.count) - self.info.time_of(self.start))

    @property
    def colour_space(self) -> str:
        return colour_space_name(self.info.colour)

    def frames(self) -> Iterator[np.ndarray]:
        """The output frames ``[OH, OW, 3]`` uint8, one at a time."""
        return composite_frames(read_frames(self.source, self.start, self.count), self.latents, self.plan,
                                self.decode, self.feather, upscale=self.upscale, transitions=self.transitions)

    def audio(self) -> Optional[tuple[np.ndarray, int]]:
        """The source's audio of these frames: ``([channels, samples] float32, rate)`` or None."""
        return read_audio(self.source, self.info.time_of(self.start), self.info.time_of(self.start + self.count))

    def trimmed(self, start_time: float = 0.0, duration: float = 0.0,
                strict_duration: bool = False) -> Optional["OutpaintedFrames"]:
        """The frames shown from ``start_time`` seconds (negative: from the end) for ``duration`` seconds (0: to
        the end), over a view of the same latents (nothing decoded); None when no frame is left, or when
        ``strict_duration`` and fewer than ``duration`` seconds remain (ComfyUI's trim rules)."""
        if duration < 0:
            return None
        origin: Fraction = self.info.time_of(self.start)
        window = frames_in_window(self.info, self.start, self.count, start_time, duration, origin)
        if window is None:
            return None
        start, count = window
        if strict_duration and duration and \
                self.info.time_of(self.start + self.count) - self.info.time_of(start) < duration - 1e-6:
            return None
        skip = start - self.start
        shots = shot_bounds(self.count, self.cuts)
        kept = [k for k, (a, b) in enumerate(shots) if a < skip + count and b > skip]  # the shots still shown
        return dataclasses.replace(self, start=start, count=count, latents=self.latents[skip:skip + count],
                                   cuts=tuple(c - skip for c in self.cuts if skip < c < skip + count),
                                   groups=None if self.groups is None else tuple(self.groups[k] for k in kept),
                                   transitions=tuple(dataclasses.replace(t, start=t.start - skip, end=t.end - skip)
                                                     for t in self.transitions))

    def write(self, path, *, container: str = "auto", codec: str = "auto", bit_depth: Optional[int] = None,
              crf: Optional[float] = None, colour_space: Optional[str] = None, preset: Optional[str] = None,
              metadata: Optional[dict] = None, on_frame: Optional[Callable[[int], None]] = None,
              name: str = "M3DDM") -> None:
        """Write the video to ``path`` with the source's audio of the range; the file appears only when complete.
        The encoder options are checked first (:func:`writer_options`: a plain ValueError with the fix); a failed
        write raises VideoFileError saying so, and leaves nothing behind. Every tenth of the frames written is
        logged, led by ``name``."""
        options = writer_options(container, codec, bit_depth, crf, colour_space, preset, self.info.colour)
        tenth = max(1, self.count // 10)

        def written(done: int) -> None:
            if done % tenth == 0:
                log.info("[%s] wrote %d of %d frames", name, done, self.count)
            if on_frame is not None:
                on_frame(done)
        try:
            write_outpainted(path, self.source, self.info, self.start, self.count, self.plan, self.latents,
                             self.decode, self.feather, self.upscale, metadata, written, transitions=self.transitions,
                             **options)
        except VideoFileError as exc:
            raise VideoFileError(f"writing the video failed: {exc}") from exc
        except OSError as exc:
            raise VideoFileError(f"writing the video failed: {exc}; nothing was left behind. Free disk space or "
                                 "choose another output folder") from exc
