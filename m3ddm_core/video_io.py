"""Video files through PyAV, one frame at a time: probe, read a frame range, write atomically with trimmed audio.

Nothing here holds more than one decoded frame (and one chunk of audio) at a time, so a long high-resolution video
streams through in bounded memory. Frames are numbered in decode order; a variable-frame-rate source is read
frame by frame like any other and written back at its average rate with the same frame count.
"""
from __future__ import annotations

import io
import logging
import json
import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Union

import av
import numpy as np

Source = Union[str, os.PathLike, io.BytesIO]
log = logging.getLogger("M3DDM")


class VideoFileError(ValueError):
    """A video that cannot be read as asked (no video stream, no frames, a range past the end, corrupt data)."""


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    frames: int  # counted from the container's packets, not its (often estimated) header
    fps: Fraction  # average frame rate
    audio_rate: Optional[int]  # None: no audio stream
    audio_channels: int = 0

    @property
    def duration(self) -> float:
        return float(self.frames / self.fps)


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
    try:
        return av.open(_Reader(source) if isinstance(source, io.BytesIO) else os.fspath(source), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoFileError(f"cannot open the video ({exc})") from exc


def probe(source: Source) -> VideoInfo:
    """Size, exact frame count, average fps and audio layout of a video (its packets are read, not decoded)."""
    with _open(source) as container:
        if not container.streams.video:
            raise VideoFileError("the file has no video stream")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise VideoFileError("the video stream has no frame rate")
        audio = container.streams.audio[0] if container.streams.audio else None
        try:
            frames = sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError as exc:
            raise VideoFileError(f"the video is corrupt ({exc})") from exc
        if frames == 0:
            raise VideoFileError("the video has no frames")
        return VideoInfo(width=stream.codec_context.width, height=stream.codec_context.height, frames=frames,
                         fps=Fraction(fps), audio_rate=audio.rate if audio is not None else None,
                         audio_channels=audio.channels if audio is not None else 0)


def check_range(info: VideoInfo, start: int, count: int) -> tuple[int, int]:
    """``(start, count)`` of frames to use; ``count`` 0 means to the end. Raises when the range leaves the video."""
    if start < 0 or count < 0:
        raise VideoFileError(f"start frame ({start}) and frame count ({count}) must not be negative")
    if start >= info.frames:
        raise VideoFileError(f"start frame {start} is past the end: the video has {info.frames} frames (0-"
                             f"{info.frames - 1})")
    available = info.frames - start
    if count > available:
        raise VideoFileError(f"{count} frames from frame {start} run past the end: only {available} remain "
                             f"(set frame count to 0 for 'to the end')")
    return start, count or available


def read_frames(source: Source, start: int = 0, count: Optional[int] = None) -> Iterator[np.ndarray]:
    """Yield frames ``start .. start+count-1`` as ``[H, W, 3]`` uint8 RGB, one at a time, in decode order."""
    end = None if count is None else start + count
    index = 0
    with _open(source) as container:
        if not container.streams.video:
            raise VideoFileError("the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if index >= start:
                    yield frame.to_ndarray(format="rgb24")
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

    @classmethod
    def of(cls, waveform: np.ndarray, rate: int, seconds_per_chunk: float = 1.0) -> "AudioTrack":
        """A whole ``[channels, samples]`` waveform, as chunks (views, no copy)."""
        step = max(1, int(rate * seconds_per_chunk))
        return cls(int(rate), waveform.shape[0], (waveform[:, i:i + step] for i in range(0, waveform.shape[1], step)))


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
        rate = container.streams.audio[0].rate
    chunks = _audio_chunks(source, round(start_s * rate), round(end_s * rate))
    first = next(chunks, None)
    if first is None:
        return None
    return AudioTrack(rate, first.shape[0], _prepend(first, chunks))


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


class VideoWriter:
    """Write frames to ``path`` as H.264 (yuv420p) with optional audio; the file appears only when complete.

    Frames go to a temporary file beside ``path`` that replaces it on a clean exit and is removed on any error,
    so an interrupted or failed write never leaves a finished-looking video. ``path`` may also be a binary
    stream (written directly). Use as a context manager; ``write`` takes ``[H, W, 3]`` uint8 RGB.

    ``audio`` is ``(waveform [channels, samples] float32, rate)`` or an :class:`AudioTrack`; it is encoded as the
    video advances (``AUDIO_AHEAD`` seconds ahead of it), so the file is interleaved and a long track is never
    held whole. More than two channels keep the first two.
    """

    AUDIO_AHEAD = 0.5  # seconds of audio muxed ahead of the video

    def __init__(self, path: Union[str, os.PathLike, IO[bytes]], fps: Fraction, width: int, height: int,
                 audio: Union[None, tuple[np.ndarray, int], AudioTrack] = None,
                 container_format: Optional[str] = None, crf: int = 18, metadata: Optional[dict] = None,
                 preset: str = "medium"):
        if width % 2 or height % 2:
            raise VideoFileError(f"H.264 needs even frame sizes, the output is {width}x{height}")
        self.target = path
        self.audio = AudioTrack.of(*audio) if isinstance(audio, tuple) else audio
        self._audio_chunks: Optional[Iterator[np.ndarray]] = None
        self._audio_samples = 0
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.size, self.format, self.crf, self.preset = (width, height), container_format, crf, preset
        self.temp: Optional[Path] = None
        self.container = self.stream = None
        self.frames = 0
        self.metadata = metadata or {}
        # MP4/MOV keep only standard tags unless asked: ComfyUI's prompt and workflow must survive (drag and drop).
        self.options = {"movflags": "use_metadata_tags"} if self.metadata else {}

    def __enter__(self) -> "VideoWriter":
        if isinstance(self.target, (str, os.PathLike)):
            target = Path(self.target)
            self.temp = target.with_name(f".{target.stem}.partial{target.suffix or '.mp4'}")
            self.container = av.open(str(self.temp), mode="w", format=self.format or None, options=self.options)
        else:
            self.container = av.open(self.target, mode="w", format=self.format or "mp4", options=self.options)
        for key, value in self.metadata.items():  # ComfyUI stores the prompt and workflow here (as JSON)
            self.container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        self.stream = self.container.add_stream("h264", rate=self.fps)
        self.stream.width, self.stream.height = self.size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(self.crf), "preset": self.preset,
                               "rc-lookahead": str(lookahead_frames(*self.size))}
        self.audio_stream = None
        if self.audio is not None:  # every stream must exist before the first packet is muxed
            self.audio_stream = self.container.add_stream("aac", rate=int(self.audio.rate))
            self.audio_stream.layout = "mono" if self.audio.channels == 1 else "stereo"
            self._audio_chunks = iter(self.audio.chunks)
        return self

    def write(self, frame: np.ndarray) -> None:
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self.stream.encode(out):
            self.container.mux(packet)
        self.frames += 1
        self._write_audio(until=float(self.frames / self.fps) + self.AUDIO_AHEAD)

    def _write_audio(self, until: Optional[float] = None) -> None:
        """Encode audio chunks up to ``until`` seconds (None: the rest of the track). Audio that cannot be read or
        encoded any further ends the track there with a warning: it must not cost the video."""
        if self._audio_chunks is None:
            return
        rate, channels = int(self.audio.rate), self.audio_stream.layout.nb_channels
        while until is None or self._audio_samples < until * rate:
            try:
                chunk = next(self._audio_chunks, None)
                if chunk is None:
                    self._audio_chunks = None
                    return
                if chunk.shape[1] == 0:
                    continue
                # the layout was fixed when the stream was added: a mono chunk is doubled, extra channels dropped
                planar = np.ascontiguousarray(np.broadcast_to(chunk[:channels], (channels, chunk.shape[1])),
                                              dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=self.audio_stream.layout.name)
                frame.sample_rate, frame.pts, frame.time_base = rate, self._audio_samples, Fraction(1, rate)
                packets = self.audio_stream.encode(frame)
            except (ValueError, av.error.FFmpegError) as exc:
                log.warning("audio ends at %.2f s in the output: %s", self._audio_samples / rate, exc)
                self._audio_chunks = None
                return
            self._audio_samples += planar.shape[1]
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
