"""Video files as users have them, through the streamed path (probe -> read -> composite -> write): what a player
shows of the output must be the source as a player shows it, with border around it. Inputs come from
``media_sources`` (PyAV); outputs are decoded here with their own tags, independently of the project's reader."""
import logging

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import media_sources as media
from m3ddm_core import CanvasError, Colour, VideoFileError, VideoWriter, check_even, decoder_warning, plan_canvas, \
    probe, read_audio, read_frames, write_outpainted


def _decode_stand_in(z: torch.Tensor) -> torch.Tensor:
    """A VAE decoder's shape, ``[k, 4, h, w] -> [k, 8h, 8w, 3]`` 0..1: a smooth border (its content does not
    matter here; a noisy one would bleed into the original's edge pixels through 4:2:0 chroma on tiny frames)."""
    return F.interpolate(z[:, :3], scale_factor=8, mode="bilinear").permute(0, 2, 3, 1).clamp(0, 1) * 0.2 + 0.4


def _outpaint(source, out, ratio: str, **kwargs):
    """The streamed write of the Outpaint Video node and the batch command, with stand-in latents."""
    info = probe(source)
    plan = plan_canvas((info.height, info.width), ratio=ratio, even=True)
    latents = torch.rand(info.frames, 4, *plan.latent_hw, generator=torch.Generator().manual_seed(0))
    write_outpainted(out, source, info, 0, info.frames, plan, latents, _decode_stand_in, feather=0, **kwargs)
    return info, plan


def _content(frame, plan):
    (y, x), (h, w) = plan.content_out_yx, plan.frame_hw
    return frame[y:y + h, x:x + w]


def test_a_phone_clip_comes_out_upright_with_its_border_on_the_right_sides(tmp_path):
    media.rotated_phone_clip(tmp_path / "phone.mp4")  # stored 320x180, shown 180x320 (portrait)
    upright = media.player_frames(tmp_path / "phone.mp4")
    info = probe(tmp_path / "phone.mp4")
    assert (info.width, info.height, info.rotation) == (180, 320, 270)
    assert any("90 degrees clockwise" in note for _, note in info.notes())
    info, plan = _outpaint(tmp_path / "phone.mp4", tmp_path / "tv.mp4", "16:9")  # portrait -> landscape: accepted
    assert plan.output_hw == (320, 568) and plan.content_out_yx == (0, 194)  # border left and right
    shown = media.player_frames(tmp_path / "tv.mp4")
    with av.open(str(tmp_path / "tv.mp4")) as c:
        assert next(c.decode(video=0)).rotation == 0  # written upright, no matrix left to apply
    assert len(shown) == 8 and shown[0].shape == (320, 568, 3)
    for src, out in zip(upright, shown):
        assert media.psnr(_content(out, plan), src) > 35
    # lying on its side (the old reading) would be nowhere near: the test can tell
    assert media.psnr(_content(shown[0], plan), np.rot90(upright[0], 2)) < 20
    # the IMAGE path's reader (read_frames, used by get_components) shows it upright as well
    assert media.psnr(next(read_frames(tmp_path / "phone.mp4")), upright[0]) > 35


@pytest.mark.parametrize("hw, pix_fmt, full", [((2160, 3840), "yuv420p10le", False), ((720, 1280), "yuv420p", True)])
def test_a_tagged_source_keeps_its_colours_as_a_player_shows_them(tmp_path, hw, pix_fmt, full):
    """A BT.709 4K 10-bit camera file (and a full-range 8-bit one): the original region, decoded with the tags by
    a player, is within 40 dB of the source decoded the same way; the output carries the source's tags."""
    src = tmp_path / "cam.mp4"
    media.tagged_clip(src, 2, hw, pix_fmt, matrix=1, full=full)
    info, plan = _outpaint(src, tmp_path / "out.mp4", "16:10")
    assert info.colour == Colour(matrix=1, range=2 if full else 1, primaries=1, transfer=1)
    with av.open(str(tmp_path / "out.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc) == (1, 2 if full else 1, 1, 1)
    source, output = media.player_frames(src), media.player_frames(tmp_path / "out.mp4")
    scores = [media.psnr(_content(o, plan), s) for s, o in zip(source, output)]
    assert len(scores) == 2 and min(scores) >= 40, scores
    # the old writer (BT.601, untagged) decoded by the same player, which takes untagged HD for BT.709: far
    # below, so the test can tell
    old = tmp_path / "old.mp4"
    with VideoWriter(old, info.fps, hw[1], hw[0], colour=Colour(matrix=2, range=2 if full else 1)) as w:
        w.write(next(read_frames(src)))
    assert media.psnr(media.player_frames(old)[0], source[0]) < 35


def test_five_one_audio_stays_five_one_with_its_centre_channel(tmp_path):
    wave = media.surround_clip(tmp_path / "movie.mp4")
    info, _ = _outpaint(tmp_path / "movie.mp4", tmp_path / "out.mp4", "9:16")
    assert (info.audio_channels, info.audio_layout) == (6, "5.1")
    assert (probe(tmp_path / "out.mp4").audio_channels, probe(tmp_path / "out.mp4").audio_layout) == (6, "5.1")
    got, rate = read_audio(tmp_path / "out.mp4", 0, 10)
    assert got.shape[0] == 6 and abs(got.shape[1] / rate - 1.0) < 0.05
    mid = slice(rate // 4, rate * 3 // 4)
    for ch, hz in enumerate(media.SURROUND_HZ):  # each channel still carries its own tone, at its level
        if hz < 200:
            continue  # the LFE channel: AAC low-passes it
        spectrum = np.abs(np.fft.rfft(got[ch, mid]))
        assert np.argmax(spectrum) == pytest.approx(hz * (mid.stop - mid.start) / rate, abs=2), ch
        level = 10 * np.log10((got[ch, mid] ** 2).mean() / (wave[ch, mid] ** 2).mean())
        assert abs(level) < 1.5, (ch, level)  # the centre was at -107 dB when only two channels were kept


def test_surround_that_aac_cannot_carry_is_downmixed_with_a_warning(tmp_path, caplog, monkeypatch):
    import m3ddm_core.media.video_io as video_io
    monkeypatch.setattr(video_io, "_aac_takes", lambda layout, rate: False)  # as for a 22.2 or an odd layout
    wave = media.surround_clip(tmp_path / "movie.mp4")
    with caplog.at_level(logging.WARNING, logger="M3DDM"):
        _outpaint(tmp_path / "movie.mp4", tmp_path / "out.mp4", "9:16")
    assert "AAC cannot carry the source's 5.1 audio layout: downmixed to stereo" in caplog.text
    got, rate = read_audio(tmp_path / "out.mp4", 0, 10)
    assert got.shape[0] == 2 and abs(got.shape[1] / rate - 1.0) < 0.05
    spectrum = np.abs(np.fft.rfft(got[0, rate // 4:rate * 3 // 4]))
    centre = spectrum[int(440 * 0.5)]  # the centre's tone is in the downmix (0.5 s window: 2 Hz a bin)
    assert centre > 0.1 * spectrum.max() and abs(wave).max() > 0


def test_a_stream_copy_trim_counts_what_a_player_shows_and_keeps_its_audio(tmp_path):
    media.edit_list_trim(tmp_path / "trim.mp4")  # 48 packets, 10 hidden by the edit list
    shown = media.player_frames(tmp_path / "trim.mp4")
    info, plan = _outpaint(tmp_path / "trim.mp4", tmp_path / "out.mp4", "9:16")
    assert info.frames == 38 == len(list(read_frames(tmp_path / "trim.mp4")))
    output = media.player_frames(tmp_path / "out.mp4")
    assert len(output) == 38
    for k, out in enumerate(output):  # frame for frame: the first shown is the eleventh encoded one
        scores = [media.psnr(_content(out, plan), src) for src in shown]
        assert scores[k] > 33 and int(np.argmax(scores)) == k, (k, scores[k])
    sound, rate = read_audio(tmp_path / "out.mp4", 0, 10)
    assert abs(sound.shape[1] / rate - 38 / 30) < 0.08  # the audio of the shown range, not of the hidden packets


def _click_times(wave: np.ndarray, rate: int) -> list[float]:
    loud = np.flatnonzero(np.abs(wave[0]) > 0.3)
    starts = loud[np.insert(np.diff(loud) > rate // 20, 0, True)]
    return [s / rate for s in starts]


def test_a_variable_frame_rate_clip_keeps_every_timestamp_and_its_audio_in_sync(tmp_path):
    """Half the clip at 30 fps, half at 10 fps (what phones write when the light drops); a flash with a click
    early and one at the end. The output keeps every frame's time, so the last click still meets its flash."""
    pts = media.vfr_clip(tmp_path / "vfr.mp4", [33] * 20 + [100] * 20, flashes=(5, 38))
    info, plan = _outpaint(tmp_path / "vfr.mp4", tmp_path / "out.mp4", "9:16")
    assert info.vfr and info.frames == 41 and abs(info.duration - 2.76) < 0.01
    (y, x), (h, w) = plan.content_out_yx, plan.frame_hw
    with av.open(str(tmp_path / "out.mp4")) as c:
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="gray")[y:y + h, x:x + w].mean())
                  for f in c.decode(video=0)]
    assert len(frames) == 41
    assert max(abs(t - p / 1000) for (t, _), p in zip(frames, pts)) < 0.002  # each frame at its own time
    flashes = [t for t, level in frames if level > 60]
    sound, rate = read_audio(tmp_path / "out.mp4", 0, 10)
    clicks = _click_times(sound, rate)
    assert len(flashes) == 2 and len(clicks) == 2
    assert max(abs(f - c) for f, c in zip(flashes, clicks)) < 0.03  # in sync at the end (was 645 ms off)
    assert abs(sound.shape[1] / rate - info.duration) < 0.08  # and the audio tail is there


def test_odd_sizes_work_with_ratio_targets_and_stay_untouched(tmp_path):
    frames = media.odd_sized_clip(tmp_path / "odd.mov")
    info, plan = _outpaint(tmp_path / "odd.mov", tmp_path / "out.mp4", "9:16")
    assert plan.output_hw == (572, 322) and plan.content_out_yx == (196, 0)  # even sides, a pixel of border
    for src, got in zip(frames, read_frames(tmp_path / "odd.mov")):
        assert np.array_equal(src, got)  # the source is read exactly (lossless)
    output = media.player_frames(tmp_path / "out.mp4")
    assert len(output) == 6 and all(media.psnr(_content(o, plan), s) > 35 for s, o in zip(frames, output))
    # an output size or padding is the user's own: an odd one is refused with what to change
    with pytest.raises(CanvasError, match=r"output would be 321x572; video encoders need even sides: make the "
                                          r"output width"):
        check_even(plan_canvas((179, 321), padding=(0, 0, 196, 197)))


def test_a_truncated_faststart_file_is_refused_with_the_counts(tmp_path):
    media.truncated_faststart(tmp_path / "cut.mp4")
    with pytest.raises(VideoFileError, match=r"the file is cut short: its header lists 24 frames, only 8 are in it"):
        probe(tmp_path / "cut.mp4")


@pytest.mark.parametrize("kind, suffix", [("prores", ".mov"), ("vp9", ".webm")])
def test_alpha_is_reported_and_what_is_done_with_it_said(tmp_path, kind, suffix):
    src = tmp_path / f"logo{suffix}"
    media.alpha_clip(src, kind)
    info = probe(src)
    assert info.alpha
    warnings = [note for level, note in info.notes() if level == logging.WARNING]
    assert warnings and "alpha channel), which is dropped" in warnings[0] and "flatten" in warnings[0]
    _outpaint(src, tmp_path / "out.mp4", "9:16")
    assert probe(tmp_path / "out.mp4").frames == 4
    assert not probe(media.rotated_phone_clip(tmp_path / "plain.mp4") and tmp_path / "plain.mp4").alpha


def test_empty_and_non_video_files_are_named_for_what_they_are(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoFileError, match=r"^the file is empty \(0 bytes\)"):
        probe(tmp_path / "empty.mp4")
    (tmp_path / "notes.mp4").write_text("shopping list\n" * 50)
    with pytest.raises(VideoFileError, match=r"^not a video file"):
        probe(tmp_path / "notes.mp4")
    with pytest.raises(VideoFileError, match=r"^cannot open the video: No such file"):
        probe(tmp_path / "missing.mp4")


def test_outputs_that_many_decoders_refuse_are_named():
    assert decoder_warning(1920, 3414) is None and decoder_warning(4096, 2304) is None
    warning = decoder_warning(3840, 6826)  # a 4K 16:9 source outpainted to 9:16
    assert "needs H.264 level 6" in warning and "--codec hevc" in warning
    assert "HEVC level 6" in decoder_warning(3840, 6826, "hevc") and decoder_warning(3840, 2160, "hevc") is None


def test_hevc_output_keeps_frames_and_tags(tmp_path):
    src = tmp_path / "cam.mp4"
    media.tagged_clip(src, 2, (360, 640), "yuv420p", matrix=1)
    _outpaint(src, tmp_path / "out.mp4", "9:16", codec="hevc")
    with av.open(str(tmp_path / "out.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "hevc" and s.codec_context.colorspace == 1
    assert probe(tmp_path / "out.mp4").frames == 2


def test_audio_without_named_channels_gets_the_usual_layout():
    """PCM in a camera MOV without a layout atom: FFmpeg names it "2 channels", which AAC cannot open."""
    from m3ddm_core.media.video_io import AudioTrack
    assert AudioTrack(48000, 2, iter(()), "2 channels").layout_name == "stereo"
    assert AudioTrack(48000, 6, iter(()), "6 channels").layout_name == "5.1"
    assert AudioTrack(48000, 6, iter(()), "5.1(side)").layout_name == "5.1(side)"
    assert AudioTrack(48000, 1, iter(()), "stereo").layout_name == "mono"  # the data decides the count
