"""Video files through PyAV (m3ddm_core.media.video_io): probe, ranges, audio, atomic writes, and bad files."""
import errno
from fractions import Fraction

import av
import numpy as np
import pytest

from helpers import write_audio_only
from m3ddm_core.media.video_io import (AudioTrack, VideoFileError, VideoWriter, audio_track, check_range, probe, read_audio,
                                 read_frames)

FPS = Fraction(30000, 1001)


def _frames(n, h=48, w=64):
    return [np.full((h, w, 3), (7 * i) % 256, np.uint8) for i in range(n)]


def _write(path, n, audio_seconds=None, container_format=None):
    audio = None
    if audio_seconds:
        t = np.arange(int(audio_seconds * 16000), dtype=np.float32) / 16000
        audio = (np.sin(2 * np.pi * 300 * t)[None] * 0.3).astype(np.float32), 16000
    with VideoWriter(path, FPS, 64, 48, audio=audio, container_format=container_format) as w:
        for f in _frames(n):
            w.write(f)
    return path


def test_probe_counts_frames_and_reads_fps_size_and_audio(tmp_path):
    info = probe(_write(tmp_path / "a.mp4", 45, audio_seconds=1.5))
    assert (info.frames, info.fps, info.width, info.height, info.audio_channels) == (45, FPS, 64, 48, 1)
    assert info.audio_rate == 16000 and info.duration == pytest.approx(45 * 1001 / 30000)


def test_read_frames_gives_exactly_the_range_in_order(tmp_path):
    path = _write(tmp_path / "a.mp4", 40)
    got = list(read_frames(path, 12, 9))
    assert len(got) == 9 and got[0].shape == (48, 64, 3) and got[0].dtype == np.uint8
    means = [f.mean() for f in got]
    expected = [(7 * i) % 256 for i in range(12, 21)]
    assert np.allclose(means, expected, atol=3)  # flat grey frames survive H.264 within a few levels
    assert len(list(read_frames(path))) == 40


def test_read_audio_trims_to_the_range(tmp_path):
    path = _write(tmp_path / "a.mp4", 60, audio_seconds=2.0)
    waveform, rate = read_audio(path, 0.5, 1.25)
    assert rate == 16000 and waveform.shape == (1, 12000) and waveform.dtype == np.float32
    assert read_audio(_write(tmp_path / "silent.mp4", 5), 0, 1) is None


def test_ranges_past_the_end_are_named(tmp_path):
    info = probe(_write(tmp_path / "a.mp4", 10))
    assert check_range(info, 0, 0) == (0, 10) and check_range(info, 4, 6) == (4, 6)
    with pytest.raises(VideoFileError, match="start frame 10 is past the end: the video has 10 frames"):
        check_range(info, 10, 0)
    with pytest.raises(VideoFileError, match="run past the end: only 6 remain"):
        check_range(info, 4, 7)
    with pytest.raises(VideoFileError, match="must not be negative"):
        check_range(info, -1, 0)


def test_a_file_without_video_or_frames_is_refused(tmp_path):
    audio_only = write_audio_only(tmp_path / "sound.m4a", seconds=1.0)
    with pytest.raises(VideoFileError, match="no video stream"):
        probe(audio_only)
    empty = tmp_path / "empty.mkv"
    with av.open(str(empty), "w") as c:  # a header and a video stream, no frames
        s = c.add_stream("h264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    with pytest.raises(VideoFileError, match="no frames|cannot open the video"):
        probe(empty)
    with pytest.raises(VideoFileError, match="no frames were written"):
        _write(tmp_path / "none.mp4", 0)
    assert not (tmp_path / "none.mp4").exists() and not (tmp_path / ".none.partial.mp4").exists()
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoFileError, match="^not a video file"):
        probe(tmp_path / "junk.mp4")


def test_a_file_cut_mid_stream_is_reported_not_shortened_silently(tmp_path):
    path = _write(tmp_path / "a.mkv", 60, container_format="matroska")
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoFileError, match="ended after|corrupt"):
        list(read_frames(cut, 0, 60))


def test_a_failed_write_leaves_no_file_that_looks_finished(tmp_path, monkeypatch):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="stop"):
        with VideoWriter(target, FPS, 64, 48) as w:
            w.write(_frames(1)[0])
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []

    def disk_full(self, packet):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        with VideoWriter(target, FPS, 64, 48) as w:
            monkeypatch.setattr(type(w.container), "mux", disk_full)
            for f in _frames(30):
                w.write(f)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    _write(target, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"] and probe(target).frames == 3


def test_odd_output_sizes_are_refused_before_writing(tmp_path):
    with pytest.raises(VideoFileError, match="even frame sizes"):
        VideoWriter(tmp_path / "o.mp4", FPS, 65, 48)


def _tone(seconds: float, rate: int = 16000, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return np.stack([np.sin(2 * np.pi * (300 + 100 * c) * t) for c in range(channels)]).astype(np.float32) * 0.3


def test_audio_is_written_as_the_video_advances_not_held_whole(tmp_path):
    """The writer pulls audio chunks only as far as the video has got (plus AUDIO_AHEAD), so a long track is
    never in memory at once, and the file comes out interleaved."""
    rate, n = 16000, 90  # 3 s of video
    pulled = []

    def chunks():
        wave = _tone(n / float(FPS), rate)
        for i in range(0, wave.shape[1], 1600):  # 0.1 s each
            pulled.append(i + 1600)
            yield wave[:, i:i + 1600]
    seen = []
    path = tmp_path / "a.mp4"
    with VideoWriter(path, FPS, 64, 48, audio=AudioTrack(rate, 2, chunks())) as w:
        for k, f in enumerate(_frames(n)):
            w.write(f)
            seen.append((k + 1, pulled[-1] if pulled else 0))
    for frames, samples in seen:  # never more than the video's time + AUDIO_AHEAD + one chunk
        assert samples / rate <= frames / float(FPS) + VideoWriter.AUDIO_AHEAD + 0.1 + 1e-6, (frames, samples)
    assert seen[0][1] > 0 and seen[-1][1] / rate >= n / float(FPS)  # it was pulled along, not at the end
    order = []
    with av.open(str(path)) as c:  # the muxed file alternates audio and video, not all video then all audio
        for packet in c.demux():
            if packet.size:
                order.append(packet.stream.type)
    first_audio, last_video = order.index("audio"), len(order) - 1 - order[::-1].index("video")
    assert first_audio < len(order) // 4 and first_audio < last_video, order[:20]
    got, got_rate = read_audio(path, 0, 10)
    assert got_rate == rate and got.shape[0] == 2 and abs(got.shape[1] / rate - n / float(FPS)) < 0.1
    # AAC at this rate keeps a pure tone: the decoded channels correlate with what went in
    want = _tone(n / float(FPS), rate)
    lag = 1024  # AAC's encoder delay, removed by the decoder when the priming is signalled; searched around
    best = max(np.corrcoef(want[0, 4000:20000], got[0, 4000 + d:20000 + d])[0, 1] for d in range(-lag, lag + 1, 1))
    assert best > 0.95, best


def test_audio_track_reads_the_range_lazily_and_in_memory_sources_read_by_several_readers_at_once(tmp_path):
    import io
    path = tmp_path / "a.mp4"
    with VideoWriter(path, FPS, 64, 48, audio=(_tone(2.0, channels=1), 16000)) as w:
        for f in _frames(60):
            w.write(f)
    whole = read_audio(path, 0.5, 1.25)[0]
    track = audio_track(path, 0.5, 1.25)
    assert (track.rate, track.channels) == (16000, 1)
    assert np.array_equal(np.concatenate(list(track.chunks), axis=1), whole) and whole.shape == (1, 12000)
    assert audio_track(_write(tmp_path / "silent.mp4", 5), 0, 1) is None
    # a VIDEO held in memory: frames and audio read through interleaved readers give what the file gives
    memory = io.BytesIO(path.read_bytes())
    frames = read_frames(memory, 0, 60)
    chunks = iter(audio_track(memory, 0.5, 1.25).chunks)
    got_frames, got_chunks = [], []
    for f in frames:
        got_frames.append(f)
        chunk = next(chunks, None)
        if chunk is not None:
            got_chunks.append(chunk)
    got_chunks += list(chunks)
    assert np.array_equal(np.stack(got_frames), np.stack(list(read_frames(path, 0, 60))))
    assert np.array_equal(np.concatenate(got_chunks, axis=1), whole)
    # a write that fails half-way with readers of the in-memory source still open leaves that BytesIO usable
    with pytest.raises(RuntimeError, match="stop"):
        with VideoWriter(tmp_path / "out.mp4", FPS, 64, 48, audio=audio_track(memory, 0, 2)) as w:
            for k, f in enumerate(read_frames(memory, 0, 60)):
                w.write(f)
                if k == 20:
                    raise RuntimeError("stop")
    size = memory.seek(0, io.SEEK_END)
    memory.write(b"more")  # no buffer export is pinned by a reader
    assert memory.seek(0, io.SEEK_END) == size + 4 and not (tmp_path / "out.mp4").exists()


def test_audio_that_fails_or_changes_layout_mid_track_costs_the_audio_not_the_video(tmp_path, caplog):
    rate = 16000
    stereo, mono = _tone(0.5, rate), _tone(0.5, rate, channels=1)

    def chunks():
        yield stereo
        yield mono  # the layout changed mid-file: doubled into the stereo stream
        yield _tone(0.5, rate, channels=6)  # more channels than the stream: the first two kept
        raise ValueError("damaged audio packet")
    path = tmp_path / "a.mp4"
    with caplog.at_level("WARNING", logger="M3DDM"):
        with VideoWriter(path, FPS, 64, 48, audio=AudioTrack(rate, 2, chunks())) as w:
            for f in _frames(90):
                w.write(f)
    assert probe(path).frames == 90
    got, _ = read_audio(path, 0, 10)
    assert got.shape[0] == 2 and abs(got.shape[1] / rate - 1.5) < 0.1  # the 1.5 s that were fine
    assert "audio ends at 1.50 s in the output: damaged audio packet" in caplog.text
