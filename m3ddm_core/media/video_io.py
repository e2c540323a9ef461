"""Video files through PyAV, one frame at a time: probe, read a frame range, write atomically with trimmed audio.

Nothing here holds more than one decoded frame (and one chunk of audio) at a time, so a long high-resolution video
streams through in bounded memory. Frames are what a player shows, in display order and orientation:

- **rotation**: a phone's display matrix (a portrait clip stored landscape) is applied when reading, so every frame
  comes out upright; outputs are written upright with no matrix;
- **colour**: Y'CbCr is converted with the source's tagged matrix and range (an untagged source gets what players
  assume: BT.709 from 1280x720 up, BT.601 below), and the output is converted and tagged with the same matrix,
  range, primaries and transfer, so the original region shows the same colours in a player;
- **frame count and timing**: packets an edit list hides (a stream-copy trim) are not counted; each frame keeps its
  timestamp, so a variable-frame-rate clip is written with its own timestamps and its audio stays in sync;
- **audio**: the source's channel layout is kept (5.1 stays 5.1) where AAC can carry it, else it is downmixed by
  FFmpeg's resampler with a warning.
"""
from __future__ import annotations

import io
import logging
import json
import os
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Sequence, Union

import av
import numpy as np

from ..pipeline.canvas import odd_side

Source = Union[str, os.PathLike, io.BytesIO]
log = logging.getLogger("M3DDM")


class VideoFileError(ValueError):
    """A video that cannot be read as asked (no video stream, no frames, a range past the end, corrupt data), or
    an output that could not be written (:meth:`.outpainted.OutpaintedFrames.write`: a full disk, a missing folder)."""


class FrameRangeError(VideoFileError):
    """Frames asked for that the video does not have (a start past the end, a count running past it, a trim that
    shows nothing): the file is fine, the range is not."""


# AVCOL_SPC values (what a stream is tagged with) -> the matrix swscale converts with; other values (unspecified,
# RGB, YCgCo...) are read as players assume an untagged source.
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
BT709, BT601 = 1, 6  # AVCOL_SPC_BT709, AVCOL_SPC_SMPTE170M
LIMITED, FULL = 1, 2  # AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG
UNSPECIFIED = 2  # AVCOL_PRI / AVCOL_TRC unspecified
SMPTE2084, ARIB_STD_B67 = 16, 18  # AVCOL_TRC of HDR video: PQ and HLG


def assumed_matrix(width: int, height: int) -> int:
    """The matrix players assume for an untagged source (mpv, browsers): BT.709 for HD sizes, BT.601 below."""
    return BT709 if width >= 1280 or height > 576 else BT601


@dataclass(frozen=True)
class Colour:
    """How a video's Y'CbCr maps to the RGB a player shows: matrix and range (AVCOL_SPC / AVCOL_RANGE values),
    and the primaries and transfer tags (AVCOL_PRI / AVCOL_TRC, carried as they are: 2 = unspecified).
    The default is what the writer always did: BT.601, limited range."""

    matrix: int = BT601
    range: int = LIMITED
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED

    @classmethod
    def of_frame(cls, frame: "av.VideoFrame") -> "Colour":
        """The source's tags, what players assume where it has none; an RGB source (PNG, QuickTime Animation)
        gets what an untagged Y'CbCr source of its size would (limited range: the usual video output)."""
        matrix = frame.colorspace if frame.colorspace in _SWS_MATRIX else assumed_matrix(frame.width, frame.height)
        if not any(c.is_chroma for c in frame.format.components):
            return cls(assumed_matrix(frame.width, frame.height))
        full = frame.color_range == FULL or frame.format.name.startswith("yuvj")
        # primaries and transfer are read from PyAV 17 on (ComfyUI asks for 14.2+): unspecified before
        return cls(int(matrix), FULL if full else LIMITED, int(getattr(frame, "color_primaries", UNSPECIFIED)),
                   int(getattr(frame, "color_trc", UNSPECIFIED)))

    @property
    def sws_matrix(self) -> int:
        return _SWS_MATRIX.get(self.matrix, 5)

    def describe(self) -> str:
        names = {1: "BT.709", 4: "FCC", 5: "BT.601", 6: "BT.601", 7: "SMPTE 240M", 9: "BT.2020", 10: "BT.2020"}
        return f"{names.get(self.matrix, self.matrix)} {'full' if self.range == FULL else 'limited'} range"


@dataclass(frozen=True)
class VideoInfo:
    """What a player shows of a video file. ``width``/``height`` are upright (after the display rotation);
    ``frames`` counts the frames shown (packets an edit list hides are not counted)."""

    width: int
    height: int
    frames: int  # counted from the container's packets, not its (often estimated) header
    fps: Fraction  # average frame rate
    audio_rate: Optional[int]  # None: no audio stream
    audio_channels: int = 0
    audio_layout: str = ""  # FFmpeg's name of the channel layout, e.g. "stereo", "5.1"
    rotation: int = 0  # degrees counter-clockwise the stored picture is turned for display (0, 90, 180, 270)
    colour: Colour = Colour()
    alpha: bool = False  # the source carries transparency (read as opaque colour)
    bit_depth: int = 8
    time_base: Optional[Fraction] = None
    # presentation timestamps of the shown frames (``time_base`` units, display order), then the end of the last
    pts: Optional[tuple[int, ...]] = field(default=None, compare=False, repr=False)
    end_pts: Optional[int] = None
    vfr: bool = False  # frames not evenly spaced at ``fps``: written with their own timestamps

    @property
    def duration(self) -> float:
        return float(self.time_of(self.frames) - self.time_of(0))

    def notes(self) -> list[tuple[int, str]]:
        """``(logging level, message)`` for what the output does with the source that a user should know."""
        notes = []
        if self.alpha:
            notes.append((logging.WARNING, "the source has transparency (an alpha channel), which is dropped: its "
                                           "colour under transparent areas is outpainted as if opaque and the output "
                                           "has no alpha. To outpaint over a background, flatten the video onto it "
                                           "first"))
        if self.rotation:
            notes.append((logging.INFO, f"the source is displayed turned {(360 - self.rotation) % 360} degrees "
                                        f"clockwise (a phone's rotation matrix): it is outpainted upright "
                                        f"({self.width}x{self.height}) and written upright"))
        if self.bit_depth > 8:
            notes.append((logging.INFO, f"the source is {self.bit_depth}-bit: the output is 8-bit "
                                        f"({self.colour.describe()}, tagged like the source), what phones and TVs "
                                        "decode"))
        if self.vfr:
            notes.append((logging.INFO, "the source has a variable frame rate: every frame keeps its timestamp"))
        return notes

    def time_of(self, index: int) -> Fraction:
        """When frame ``index`` is shown, in seconds on the file's clock (``index == frames``: the end of the last
        frame); the same clock as the audio's timestamps."""
        if self.pts is None:
            return Fraction(index) / self.fps
        if index >= self.frames:
            return self.end_pts * self.time_base
        return self.pts[index] * self.time_base

    def frame_pts(self, start: int, count: int) -> tuple[Fraction, list[int]]:
        """``(time_base, pts)`` of frames ``start .. start+count-1`` relative to the first of them (what a writer
        that keeps the source's timing needs)."""
        first = self.pts[start]
        return self.time_base, [p - first for p in self.pts[start:start + count]]


_SHARED_READS = threading.Lock()


class _Reader(io.RawIOBase):
    """A reader of an in-memory video with a position of its own: several readers (the frames and the audio of
    one write) can read one BytesIO at once. Each read seeks and reads under a lock; the bytes are neither copied
    nor pinned (no buffer export: the caller's BytesIO stays usable)."""

    def __init__(self, source: io.BytesIO):
        self._source, self._pos = source, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        with _SHARED_READS:
            self._source.seek(self._pos)
            n = self._source.readinto(buffer)
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            with _SHARED_READS:
                end = self._source.seek(0, io.SEEK_END)  # seeking neither copies nor pins the bytes
        self._pos = max(0, offset + (0, self._pos, end if whence == io.SEEK_END else 0)[whence])
        return self._pos

    def tell(self) -> int:
        return self._pos


def _open(source: Source):
    if not isinstance(source, io.BytesIO):
        try:
            if os.path.getsize(source) == 0:
                raise VideoFileError("the file is empty (0 bytes): an interrupted download or copy? Copy or download it again")
        except OSError as exc:
            raise VideoFileError(f"cannot open the video: {exc.strerror or exc}") from exc
    try:
        return av.open(_Reader(source) if isinstance(source, io.BytesIO) else os.fspath(source), mode="r")
    except av.error.InvalidDataError:
        raise VideoFileError("not a video file (FFmpeg recognises no video format in it)") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoFileError(f"cannot open the video ({exc})") from exc


def _has_alpha(stream) -> bool:
    """Transparency in the pixel format (ProRes 4444, PNG, QuickTime Animation) or as the side channel VP8/VP9
    keep it in (WebM's alpha_mode; FFmpeg's decoders drop it)."""
    fmt = stream.codec_context.format
    in_pixels = fmt is not None and any(c.is_alpha for c in fmt.components)
    return in_pixels or stream.metadata.get("alpha_mode", stream.metadata.get("ALPHA_MODE")) == "1"


def _uneven(pts: Sequence[int], time_base: Fraction, fps: Fraction) -> bool:
    """Frames not evenly spaced at ``fps``: some interval differs from ``1/fps`` by more than 2 ms (or a tick of
    the container's clock), more than container rounding does."""
    step = 1 / (fps * time_base)  # in ticks
    tolerance = max(Fraction(1, 500) / time_base, Fraction(1))
    return any(abs(b - a - step) > tolerance for a, b in zip(pts, pts[1:]))


def probe(source: Source) -> VideoInfo:
    """What a player shows of the first video stream: upright size, frames shown (counted from the packets, an
    edit list's hidden ones left out), average fps, timestamps, colour, rotation, alpha, audio layout. Packets are
    read, not decoded, except the first picture (rotation and colour tags live there). A file whose header lists
    more frames than it holds (cut short) is refused with the counts."""
    with _open(source) as container:
        if not container.streams.video:
            raise VideoFileError("the file has no video stream (an audio file or a still image?)")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise VideoFileError("the video stream has no frame rate")
        audio = container.streams.audio[0] if container.streams.audio else None
        pts: list = []
        packets, first, last_pts, last_duration, reached = 0, None, None, 0, None
        try:
            for packet in container.demux(stream):
                if packet.pts is not None:  # how far the file goes, hidden packets included
                    end = packet.pts + (packet.duration or 0)
                    reached = end if reached is None else max(reached, end)
                if not packet.size:
                    continue
                packets += 1
                if first is None:  # decode until the first picture comes out (B-frame reordering may delay it)
                    first = next(iter(packet.decode()), None)
                if packet.is_discard:  # an edit list hides it: decoded as a reference, never shown
                    continue
                pts.append(packet.pts)
                if packet.pts is not None and (last_pts is None or packet.pts >= last_pts):
                    last_pts, last_duration = packet.pts, packet.duration or 0
            if first is None and packets:
                first = next(iter(stream.codec_context.decode(None)), None)
        except av.error.FFmpegError as exc:
            raise VideoFileError(f"the video is corrupt ({exc})") from exc
        if not pts:
            raise VideoFileError("the video has no frames")
        header = stream.frames
        # a header listing more frames than the file holds, and packets that stop before the header's duration
        # (an edit list's trimmed tail also leaves packets out of the count, but not out of the duration)
        expected = (stream.start_time or 0) + stream.duration if stream.duration else None
        step = round(1 / (Fraction(fps) * stream.time_base)) if fps else 0
        short = expected is None or reached is None or reached < expected - step
        if header and packets < header and short:
            raise VideoFileError(f"the file is cut short: its header lists {header} frames, only {packets} are in it "
                                 f"(an interrupted download or copy?). Get the whole file again")
        fps = Fraction(fps)
        times = None if any(p is None for p in pts) else tuple(sorted(pts))
        end = None
        if times is not None:
            step = round(1 / (fps * stream.time_base)) if len(times) < 2 else \
                round(Fraction(times[-1] - times[0], len(times) - 1))
            end = times[-1] + (last_duration or step)
        rotation = round(getattr(first, "rotation", 0) or 0) % 360 if first is not None else 0
        rotation = 90 * round(rotation / 90) % 360
        w, h = stream.codec_context.width, stream.codec_context.height
        colour = Colour.of_frame(first) if first is not None else Colour(assumed_matrix(w, h))
        fmt = stream.codec_context.format
        depth = max((c.bits for c in fmt.components), default=8) if fmt is not None else 8
        return VideoInfo(width=h if rotation in (90, 270) else w, height=w if rotation in (90, 270) else h,
                         frames=len(pts), fps=fps, audio_rate=audio.rate if audio is not None else None,
                         audio_channels=audio.channels if audio is not None else 0,
                         audio_layout=audio.layout.name if audio is not None else "", rotation=rotation,
                         colour=colour, alpha=_has_alpha(stream), bit_depth=depth,
                         time_base=Fraction(stream.time_base) if times is not None else None, pts=times, end_pts=end,
                         vfr=times is not None and _uneven(times, Fraction(stream.time_base), fps))


def check_range(info: VideoInfo, start: int, count: int, window: Optional[tuple[int, int]] = None) \
        -> tuple[int, int]:
    """``(start, count)`` of frames to use; ``count`` 0 means to the end. Raises when the range leaves the video.
    ``window``: ``(first, frames)`` of the source the video is trimmed to (e.g. by ComfyUI's Video Slice); ``start``
    counts from its first frame."""
    if start < 0 or count < 0:
        raise FrameRangeError(f"start frame ({start}) and frame count ({count}) must not be negative")
    first, frames = window or (0, info.frames)
    what = "the video has" if window is None else f"the trimmed video (source frames {first}-{first + frames - 1}) has"
    if start >= frames:
        raise FrameRangeError(f"start frame {start} is past the end: {what} {frames} frames (0-{frames - 1})")
    available = frames - start
    if count > available:
        raise FrameRangeError(f"{count} frames from frame {start} run past the end: only {available} remain "
                             f"(set frame count to 0 for 'to the end')")
    return first + start, count or available


def frames_in_window(info: VideoInfo, start: int, count: int, start_time: float, duration: float,
                     origin: Fraction = Fraction(0)) -> Optional[tuple[int, int]]:
    """``(start, count)`` of the frames of ``start .. start+count-1`` shown from ``start_time`` seconds for
    ``duration`` seconds (0: to the end), times counted from ``origin`` on the file's clock; a negative
    ``start_time`` counts back from the end of the range (ComfyUI's trim rules). None when no frame is shown in
    that window."""
    end = info.time_of(start + count) - origin
    first = Fraction(start_time).limit_denominator(10 ** 9) if start_time else Fraction(0)
    if first < 0:
        first = max(end + first, Fraction(0))
    last = first + Fraction(duration).limit_denominator(10 ** 9) if duration else None
    shown = [i for i in range(start, start + count)
             if info.time_of(i) - origin >= first and (last is None or info.time_of(i) - origin < last)]
    return (shown[0], len(shown)) if shown else None


def colour_space_name(colour: Colour) -> str:
    """ComfyUI's name of a video's colour space: ``"HDR"`` (HLG transfer), ``"HDR PQ"`` (PQ transfer), else
    ``"sRGB"`` (standard dynamic range, whatever its matrix)."""
    return {ARIB_STD_B67: "HDR", SMPTE2084: "HDR PQ"}.get(colour.transfer, "sRGB")


def to_rgb(frame: "av.VideoFrame", colour: Optional[Colour] = None) -> np.ndarray:
    """One decoded frame as a player shows it: ``[H, W, 3]`` uint8 RGB, converted with ``colour`` (default: the
    frame's own tags, or what players assume) and turned upright by its display rotation."""
    colour = colour or Colour.of_frame(frame)
    rgb = frame.to_ndarray(format="rgb24", src_colorspace=colour.sws_matrix, src_color_range=colour.range)
    quarter = round((getattr(frame, "rotation", 0) or 0) / 90) % 4  # np.rot90 turns counter-clockwise
    return np.ascontiguousarray(np.rot90(rgb, quarter)) if quarter else rgb


def read_frames(source: Source, start: int = 0, count: Optional[int] = None) -> Iterator[np.ndarray]:
    """Yield frames ``start .. start+count-1`` as ``[H, W, 3]`` uint8 RGB, one at a time, in display order, upright
    and in the colours a player shows (:func:`to_rgb`)."""
    end = None if count is None else start + count
    index, colour = 0, None
    with _open(source) as container:
        if not container.streams.video:
            raise VideoFileError("the file has no video stream (an audio file or a still image?)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if index >= start:
                    colour = colour or Colour.of_frame(frame)  # one conversion for the whole range
                    yield to_rgb(frame, colour)
                index += 1
                if end is not None and index >= end:
                    return
        except av.error.FFmpegError as exc:
            raise VideoFileError(f"the video is corrupt at frame {index} ({exc})") from exc
    if end is not None and index < end:
        raise VideoFileError(f"the video ended after {index} frames, {end - index} before the end of the range "
                             f"(a truncated or corrupt file)")


@dataclass
class AudioTrack:
    """Audio as consecutive chunks ``[channels, k]`` float32 at ``rate`` Hz, read lazily (a writer pulls them as
    the video advances, so a long track is never held whole)."""

    rate: int
    channels: int
    chunks: Iterable[np.ndarray]
    layout: str = ""  # FFmpeg's channel layout name ("5.1", ...); "" = the usual one for ``channels``

    @classmethod
    def of(cls, waveform: np.ndarray, rate: int, seconds_per_chunk: float = 1.0, layout: str = "") -> "AudioTrack":
        """A whole ``[channels, samples]`` waveform, as chunks (views, no copy)."""
        step = max(1, int(rate * seconds_per_chunk))
        return cls(int(rate), waveform.shape[0], (waveform[:, i:i + step] for i in range(0, waveform.shape[1], step)),
                   layout)

    @property
    def layout_name(self) -> str:
        """The layout to write: the source's when it has as many channels as the data, else the usual one."""
        # a layout without channel names ("2 channels": PCM without a layout atom) is no layout AAC can open
        named = self.layout and not self.layout.endswith(" channels")
        if named and av.AudioLayout(self.layout).nb_channels == self.channels:
            return self.layout
        return DEFAULT_LAYOUTS.get(self.channels, "stereo")


# FFmpeg's default layout for a channel count (what a file without a layout tag is played as)
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _audio_chunks(source: Source, first: int, last: int) -> Iterator[np.ndarray]:
    with _open(source) as container:
        stream = container.streams.audio[0]
        rate, pos = stream.rate, None
        try:
            for frame in container.decode(stream):
                data = frame.to_ndarray()
                if data.dtype != np.float32:
                    data = (data.astype(np.float32) / np.iinfo(data.dtype).max) if data.dtype.kind == "i" \
                        else data.astype(np.float32)
                if frame.format.is_packed:  # interleaved [1, samples * channels]
                    data = data.reshape(-1, frame.layout.nb_channels).T
                if pos is None:
                    pos = round(float(frame.pts * frame.time_base) * rate) if frame.pts is not None else 0
                lo, hi = max(first - pos, 0), min(last - pos, data.shape[1])
                if hi > lo:
                    yield data[:, lo:hi]
                pos += data.shape[1]
                if pos >= last:
                    return
        except av.error.FFmpegError:
            return  # audio damage must not cost the video: keep what decoded


def _prepend(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first  # a generator (not itertools.chain): closing it closes the reader below
    yield from rest


def audio_track(source: Source, start_s: float, end_s: float) -> Optional[AudioTrack]:
    """The first audio stream between ``start_s`` and ``end_s`` seconds as an :class:`AudioTrack` read while it is
    consumed (its own reader of the file), or None when there is no audio (or none in the range). The channel
    count is the first decoded chunk's (a header can disagree with the data)."""
    with _open(source) as container:
        if not container.streams.audio:
            return None
        rate, layout = container.streams.audio[0].rate, container.streams.audio[0].layout.name
    chunks = _audio_chunks(source, round(start_s * rate), round(end_s * rate))
    first = next(chunks, None)
    if first is None:
        return None
    return AudioTrack(rate, first.shape[0], _prepend(first, chunks), layout)


def read_audio(source: Source, start_s: float, end_s: float) -> Optional[tuple[np.ndarray, int]]:
    """The first audio stream between ``start_s`` and ``end_s`` seconds, whole: ``([channels, samples] float32,
    rate)``, or None when there is no audio (or none in the range)."""
    track = audio_track(source, start_s, end_s)
    chunks = list(track.chunks) if track is not None else []
    if not chunks:
        return None
    return np.concatenate(chunks, axis=1), track.rate


LOOKAHEAD_PIXELS = 40 * 1920 * 1080  # x264's default lookahead (40 frames) at 1080p


def lookahead_frames(width: int, height: int) -> int:
    """x264's rate-control lookahead for this frame size: its default 40 frames up to 1080p, fewer on larger frames
    so the frames it holds stay about those of 1080p (at 1920x3414 the default alone holds ~1.1 GB, measured;
    12 frames ~0.5 GB); at least 10 (mb-tree still works)."""
    return max(10, min(40, LOOKAHEAD_PIXELS // (width * height)))


# H.264 levels up to 5.2 allow 36,864 macroblocks a frame (4096x2304); larger frames need level 6, which many
# phone and TV decoders refuse (HEVC's level 5.1 allows 8,912,896 luma samples, level 6 four times as many).
H264_LEVEL52_MACROBLOCKS = 36864
CODECS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
CONTAINERS = {"mp4": "mp4", "mkv": "matroska"}  # what a writer is asked for -> FFmpeg's muxer
BIT_DEPTHS = {8: "yuv420p", 10: "yuv420p10le"}
H264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


def decoder_warning(width: int, height: int, codec: str = "h264") -> Optional[str]:
    """A warning when a ``width`` x ``height`` output needs a codec level that many phones and TVs do not decode
    (H.264 level 6, HEVC level 6), else None."""
    if codec == "hevc":
        if width * height <= 8_912_896:
            return None
        return (f"the {width}x{height} output needs HEVC level 6 (8K-class): TVs and phones without 8K decoding "
                f"refuse it; a smaller target or output size plays everywhere")
    if -(-width // 16) * -(-height // 16) <= H264_LEVEL52_MACROBLOCKS:
        return None
    hint = ("HEVC (--codec hevc in the batch command) plays on 8K TVs, " if width * height <= 35_651_584 else "")
    return (f"the {width}x{height} output needs H.264 level 6 (more than 4096x2304 pixels a frame), which many phones "
            f"and TVs refuse: {hint}a smaller target or output size plays everywhere")


def _aac_takes(layout: str, rate: int) -> bool:
    context = av.CodecContext.create("aac", "w")
    context.sample_rate, context.format = rate, "fltp"
    try:
        context.layout = layout
        context.open()
        return True
    except (ValueError, av.error.FFmpegError):
        return False


class VideoWriter:
    """Write frames to ``path`` as H.264 (or HEVC, AV1) 4:2:0 with optional audio; the file appears only when
    complete.

    Frames go to a temporary file beside ``path`` that replaces it on a clean exit and is removed on any error,
    so an interrupted or failed write never leaves a finished-looking video. ``path`` may also be a binary
    stream (written directly). Use as a context manager; ``write`` takes ``[H, W, 3]`` uint8 RGB.

    ``colour``: the RGB -> Y'CbCr matrix and range the frames are converted with, and the tags the file carries
    (a source's :class:`Colour` keeps its original region looking the same in a player); default BT.601 limited.
    ``pts`` (with ``time_base``): each frame's timestamp, for variable-frame-rate sources; else frames are
    ``1/fps`` apart. ``bit_depth``: 8 (default, what every phone and TV decodes, whatever the source) or 10.

    ``audio`` is ``(waveform [channels, samples] float32, rate)`` or an :class:`AudioTrack`; it is encoded as the
    video advances (``AUDIO_AHEAD`` seconds ahead of it), so the file is interleaved and a long track is never
    held whole. Its channel layout is kept; one AAC cannot carry is downmixed to stereo by FFmpeg's resampler
    (with a warning).
    """

    AUDIO_AHEAD = 0.5  # seconds of audio muxed ahead of the video

    def __init__(self, path: Union[str, os.PathLike, IO[bytes]], fps: Fraction, width: int, height: int,
                 audio: Union[None, tuple[np.ndarray, int], AudioTrack] = None,
                 container_format: Optional[str] = None, crf: int = 18, metadata: Optional[dict] = None,
                 preset: str = "medium", colour: Optional[Colour] = None, pts: Optional[Sequence[int]] = None,
                 time_base: Optional[Fraction] = None, codec: str = "h264", bit_depth: int = 8):
        if odd_side((height, width)) is not None:
            raise VideoFileError(f"H.264 and HEVC need even frame sizes, the output is {width}x{height}")
        if codec not in CODECS:
            raise VideoFileError(f"codec {codec!r} is unknown; use one of {', '.join(CODECS)}")
        if bit_depth not in BIT_DEPTHS:
            raise VideoFileError(f"bit depth {bit_depth} cannot be written; use {' or '.join(map(str, BIT_DEPTHS))}")
        if pts is not None and time_base is None:
            raise ValueError("pts need their time_base")
        self.target = path
        self.audio = AudioTrack.of(*audio) if isinstance(audio, tuple) else audio
        self._audio_chunks: Optional[Iterator[np.ndarray]] = None
        self._audio_samples = 0
        self._downmix = None
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.size, self.format, self.crf, self.preset = (width, height), container_format, crf, preset
        self.colour, self.codec, self.pix_fmt = colour or Colour(), codec, BIT_DEPTHS[bit_depth]
        self.pts, self.time_base = (list(pts), Fraction(time_base)) if pts is not None else (None, None)
        self.temp: Optional[Path] = None
        self.container = self.stream = None
        self.frames = 0
        self.metadata = metadata or {}
        # MP4/MOV keep only standard tags unless asked: ComfyUI's prompt and workflow must survive (drag and drop).
        self.options = {"movflags": "use_metadata_tags"} if self.metadata else {}
        warning = decoder_warning(width, height, codec)
        if warning:
            log.warning(warning)

    def __enter__(self) -> "VideoWriter":
        if isinstance(self.target, (str, os.PathLike)):
            target = Path(self.target)
            self.temp = target.with_name(f".{target.stem}.partial{target.suffix or '.mp4'}")
            self.container = av.open(str(self.temp), mode="w", format=self.format or None, options=self.options)
        else:
            self.container = av.open(self.target, mode="w", format=self.format or "mp4", options=self.options)
        for key, value in self.metadata.items():  # ComfyUI stores the prompt and workflow here (as JSON)
            self.container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        self.stream = self.container.add_stream(CODECS[self.codec], rate=self.fps)
        self.stream.width, self.stream.height = self.size
        self.stream.pix_fmt = self.pix_fmt
        context = self.stream.codec_context
        context.colorspace, context.color_range = self.colour.matrix, self.colour.range
        context.color_primaries, context.color_trc = self.colour.primaries, self.colour.transfer
        if self.pts is not None:
            context.time_base = self.time_base
        if self.codec == "hevc":
            self.stream.options = {"crf": f"{self.crf:g}", "preset": self.preset, "x265-params": "log-level=error:"
                                   f"rc-lookahead={lookahead_frames(*self.size)}"}
            self.stream.codec_tag = "hvc1"  # what Apple players want in MP4
        elif self.codec == "av1":  # SVT-AV1 presets are numbers (0 slowest .. 13 fastest), not x264's names
            self.stream.options = {"crf": str(round(self.crf)), "preset": self.preset if self.preset.isdigit() else "8"}
        else:
            self.stream.options = {"crf": f"{self.crf:g}", "preset": self.preset,
                                   "rc-lookahead": str(lookahead_frames(*self.size))}
        self.audio_stream = None
        if self.audio is not None:  # every stream must exist before the first packet is muxed
            rate, layout = int(self.audio.rate), self.audio.layout_name
            self.audio_stream = self.container.add_stream("aac", rate=rate)
            if not _aac_takes(layout, rate):
                log.warning("AAC cannot carry the source's %s audio layout: downmixed to stereo", layout)
                self._downmix = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
                self.audio_stream.layout = "stereo"
            else:
                self.audio_stream.layout = layout
            self._audio_chunks = iter(self.audio.chunks)
        return self

    def write(self, frame: np.ndarray) -> None:
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(
            format=self.pix_fmt, dst_colorspace=self.colour.sws_matrix, dst_color_range=self.colour.range)
        if self.pts is not None:
            out.pts, out.time_base = self.pts[self.frames], self.time_base
        for packet in self.stream.encode(out):
            self.container.mux(packet)
        self.frames += 1
        self._write_audio(until=float(self._time_written()) + self.AUDIO_AHEAD)

    def _time_written(self) -> Fraction:
        """Seconds of video written so far (the start of the next frame)."""
        if self.pts is None:
            return self.frames / self.fps
        if self.frames < len(self.pts):
            return self.pts[self.frames] * self.time_base
        return self.pts[-1] * self.time_base + 1 / self.fps

    def _audio_frames(self, chunk: np.ndarray) -> list:
        """One chunk as AudioFrames of the stream's layout: a chunk of fewer channels than the stream is repeated,
        extra channels dropped (the layout was fixed when the stream was added), or downmixed."""
        layout = self.audio.layout_name if self._downmix is not None else self.audio_stream.layout.name
        channels = av.AudioLayout(layout).nb_channels
        planar = np.ascontiguousarray(np.broadcast_to(chunk[:channels], (channels, chunk.shape[1])), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = int(self.audio.rate)
        return [frame] if self._downmix is None else self._downmix.resample(frame)

    def _encode_audio(self, frames: list) -> list:
        rate, packets = int(self.audio.rate), []
        for frame in frames:
            frame.pts, frame.time_base = self._audio_samples, Fraction(1, rate)
            self._audio_samples += frame.samples
            packets += self.audio_stream.encode(frame)
        return packets

    def _write_audio(self, until: Optional[float] = None) -> None:
        """Encode audio chunks up to ``until`` seconds (None: the rest of the track). Audio that cannot be read or
        encoded any further ends the track there with a warning: it must not cost the video."""
        if self._audio_chunks is None:
            return
        rate = int(self.audio.rate)
        while until is None or self._audio_samples < until * rate:
            try:
                chunk = next(self._audio_chunks, None)
                if chunk is None:
                    self._audio_chunks = None
                    if self._downmix is not None:
                        for packet in self._encode_audio(self._downmix.resample(None)):
                            self.container.mux(packet)
                    return
                if chunk.shape[1] == 0:
                    continue
                packets = self._encode_audio(self._audio_frames(chunk))
            except (ValueError, av.error.FFmpegError) as exc:
                log.warning("audio ends at %.2f s in the output: %s", self._audio_samples / rate, exc)
                self._audio_chunks = None
                return
            for packet in packets:  # a write error (a full disk) is the video's, not the audio's: it propagates
                self.container.mux(packet)

    def _finish(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        if self.audio_stream is not None:
            self._write_audio()
            for packet in self.audio_stream.encode(None):
                self.container.mux(packet)
        self.container.close()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self.frames == 0:
                    raise VideoFileError("no frames were written: a video needs at least one")
                self._finish()
                if self.temp is not None:
                    os.replace(self.temp, self.target)
                    self.temp = None
        finally:
            close_audio = getattr(self.audio.chunks, "close", None) if self.audio is not None else None
            if close_audio is not None:  # a reader left mid-track (a failed write) lets go of its file now
                close_audio()
            self._audio_chunks = None
            if self.temp is not None:  # failed: close what is open and leave nothing behind
                try:
                    self.container.close()
                except Exception:  # noqa: BLE001 -- already failing; the original error is what matters
                    pass
                self.temp.unlink(missing_ok=True)
