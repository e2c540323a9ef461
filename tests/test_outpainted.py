"""A file through the entry and back (media/outpainted.py): what preparing a file logs, and a read or a write that
fails saying which, leaving nothing behind."""
from fractions import Fraction

import pytest
import torch

from helpers import TinyVAE
from m3ddm_core import (Edit, OutpaintedFrames, SampleSettings, VideoFileError, open_range, plan_canvas,
                        prepare_file)
from m3ddm_core.media.video_io import VideoWriter
from media_sources import picture

N = 40


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "a.mkv"
    with VideoWriter(path, Fraction(24), 64, 48, container_format="matroska") as w:
        for i in range(N):
            w.write(picture(i, 48, 64))
    return path


def test_preparing_a_file_logs_the_work_and_the_shots_and_names_a_frame_it_cannot_read(clip, tmp_path, caplog):
    info, start, count = open_range(clip, name="job")
    plan = plan_canvas((48, 64), ratio="9:16", canvas_size=64, even=True)
    with caplog.at_level("INFO", logger="M3DDM"):
        video = prepare_file(clip, info, start, count, plan, TinyVAE().encode, SampleSettings(steps=1), shots="list",
                             cuts="20", name="job")
    assert f"[job] 40 frames 64x48 at 24.000 fps -> {plan.output_hw[1]}x{plan.output_hw[0]}" in caplog.text
    assert "[job] 2 shot(s); cuts at frames [20]" in caplog.text and tuple(video.plan.cuts) == (20,)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(clip.read_bytes()[:len(clip.read_bytes()) // 2])
    with pytest.raises(VideoFileError, match="^reading the video failed: the video (ended after|is corrupt)"):
        prepare_file(cut, info, start, count, plan, TinyVAE().encode, SampleSettings(steps=1), name="job")


def test_writing_logs_its_progress_and_a_failed_write_says_so_and_leaves_nothing(clip, tmp_path, caplog):
    info, start, count = open_range(clip)
    plan = plan_canvas((48, 64), ratio="9:16", canvas_size=64, even=True)
    out = OutpaintedFrames(clip, info, start, count, plan, torch.zeros(count, 4, 8, 8), TinyVAE().decode,
                           cuts=(20,), groups=(0, 0))
    assert out.edit == Edit((20,), (), (0, 0))
    seen = []
    with caplog.at_level("INFO", logger="M3DDM"):
        out.write(tmp_path / "out.mp4", on_frame=seen.append, name="job")
    assert seen == list(range(1, N + 1)) and (tmp_path / "out.mp4").is_file()
    assert "[job] wrote 4 of 40 frames" in caplog.text and "[job] wrote 40 of 40 frames" in caplog.text
    with pytest.raises(VideoFileError, match="^writing the video failed: .*nothing was left behind. Free disk space"):
        out.write(tmp_path / "gone" / "out.mp4")
    assert not (tmp_path / "gone").exists()
    with pytest.raises(ValueError, match="choose codec auto, h264 or av1") as refused:
        out.write(tmp_path / "vp9.mp4", codec="vp9")
    assert not isinstance(refused.value, VideoFileError) and not (tmp_path / "vp9.mp4").exists()
