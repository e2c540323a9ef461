"""Video files as users have them, made with PyAV for the tests: a phone's rotation, tagged colour (10-bit, full
range), 5.1 audio, a stream-copy trim (edit list), variable frame rate with audio, odd sizes, a truncated faststart
file, alpha. Each writer says what a player shows of the file, so tests can compare against that.

A player's view is decoded here with the file's own tags (``player_frames``), independently of the project's reader.
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import Colorspace, ColorRange

SPC_TO_SWS = {1: Colorspace.ITU709, 5: Colorspace.ITU601, 6: Colorspace.ITU601, 9: Colorspace.BT2020}


def picture(i: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A frame ``[h, w, 3]`` uint8 with saturated colours (where BT.601 and BT.709 differ most), smooth gradients
    and a marker that moves with ``i``; softened like a camera picture (a sharp colour edge of a few pixels is
    what 4:2:0 chroma cannot hold, in any file)."""
    import cv2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = np.zeros((h, w, 3), np.float32)
    f[..., 0] = 40 + 180 * xx / max(w - 1, 1)
    f[..., 1] = 30 + 160 * yy / max(h - 1, 1)
    f[..., 2] = 120 + 60 * np.sin(xx / 17 + yy / 23 + i / 3)
    f[h // 8:h // 3, w // 8:w // 2] = (239, 238, 39)  # the yellow
    f[h // 2:h * 3 // 4, w // 2:w * 7 // 8] = (30, 60, 200)
    x = (i * 7) % max(w - 8, 1)
    f[h - h // 6:h - h // 6 + max(h // 20, 2), x:x + 8] = 250
    f = cv2.GaussianBlur(f, (0, 0), max(1.0, min(h, w) / 40))
    return f.clip(0, 255).astype(np.uint8)


def player_frames(path) -> list[np.ndarray]:
    """Every shown frame ``[H, W, 3]`` uint8 RGB as a player decodes it: with the tagged matrix and range (an
    untagged one as mpv and browsers do: BT.709 from 1280x720 up, BT.601 below), turned by the display rotation."""
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            hd = frame.width >= 1280 or frame.height > 576
            matrix = SPC_TO_SWS.get(frame.colorspace, Colorspace.ITU709 if hd else Colorspace.ITU601)
            full = frame.color_range == 2 or frame.format.name.startswith("yuvj")
            rgb = frame.reformat(format="rgb24", src_colorspace=matrix,
                                 src_color_range=ColorRange.JPEG if full else ColorRange.MPEG).to_ndarray()
            out.append(np.ascontiguousarray(np.rot90(rgb, round((frame.rotation or 0) / 90) % 4)))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-10)))


def _encode_video(container, stream, frames, pts=None, time_base=None):
    for i, f in enumerate(frames):
        frame = f if isinstance(f, av.VideoFrame) else av.VideoFrame.from_ndarray(f, format="rgb24")
        if pts is not None:
            frame.pts, frame.time_base = pts[i], time_base
        for p in stream.encode(frame):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)


def _encode_audio(container, stream, wave: np.ndarray, rate: int, layout: str):
    for j in range(0, wave.shape[1], 1024):
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, j:j + 1024]), format="fltp", layout=layout)
        fr.sample_rate, fr.pts, fr.time_base = rate, j, Fraction(1, rate)
        for p in stream.encode(fr):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)


def rotated_phone_clip(path, n: int = 8, stored_hw=(180, 320)) -> list[np.ndarray]:
    """A portrait clip as phones store it: landscape pixels and a display matrix turning them -90 degrees (so a
    player shows them clockwise-turned, upright). Returns the upright frames a player shows."""
    h, w = stored_hw
    upright = [picture(i, w, h) for i in range(n)]  # portrait: w tall, h wide
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "10"}
        s.set_display_rotation(-90)
        _encode_video(c, s, [np.ascontiguousarray(np.rot90(f, 1)) for f in upright])  # shown turned by -90 degrees
    return upright


def tagged_clip(path, n: int, hw, pix_fmt: str = "yuv420p10le", matrix: int = 1, full: bool = False):
    """A clip tagged BT.709 (matrix, primaries and transfer) -- or ``matrix`` -- in ``pix_fmt`` (10-bit by
    default), converted with those tags as a camera would."""
    h, w = hw
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = {"crf": "8", "preset": "ultrafast"}
        cc = s.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = matrix, matrix, matrix
        cc.color_range = 2 if full else 1
        frames = (av.VideoFrame.from_ndarray(picture(i, h, w), format="rgb24").reformat(
            format=pix_fmt, dst_colorspace=SPC_TO_SWS[matrix],
            dst_color_range=ColorRange.JPEG if full else ColorRange.MPEG) for i in range(n))
        _encode_video(c, s, frames)


SURROUND_HZ = (220, 330, 440, 110, 550, 660)  # FL FR FC LFE BL BR of "5.1": one tone per channel


def surround_clip(path, n: int = 25, rate: int = 48000, layout: str = "5.1") -> np.ndarray:
    """1 s of 64x48 video at 25 fps with 5.1 AAC: each channel its own tone (the centre carries dialogue)."""
    t = np.arange(int(n / 25 * rate)) / rate
    wave = np.stack([0.2 * np.sin(2 * np.pi * hz * t) for hz in SURROUND_HZ]).astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=rate)
        a.layout = layout
        _encode_video(c, s, [picture(i, 48, 64) for i in range(n)])
        _encode_audio(c, a, wave, rate, layout)
    return wave


def edit_list_trim(path, n: int = 48, hidden: int = 10, rate: int = 16000) -> list[np.ndarray]:
    """What ``ffmpeg -ss ... -c copy`` (or LosslessCut) writes: the packets from the keyframe before the cut, the
    first ``hidden`` of them hidden by an edit list. Video one GOP of ``n`` frames at 30 fps with a tone.
    Returns the frames a player shows (the last ``n - hidden``)."""
    source = path.with_name(path.stem + "_source.mp4")
    frames = [picture(i, 96, 128) for i in range(n)]
    t = np.arange(int(n / 30 * rate)) / rate
    with av.open(str(source), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 128, 96, "yuv420p"
        s.options = {"g": str(n), "bf": "0", "crf": "10"}
        a = c.add_stream("aac", rate=rate)
        a.layout = "mono"
        _encode_video(c, s, frames)
        _encode_audio(c, a, (0.3 * np.sin(2 * np.pi * 300 * t))[None].astype(np.float32), rate, "mono")
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        outs = {st.index: dst.add_stream_from_template(st) for st in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            shift = round(Fraction(hidden, 30) / packet.stream.time_base)
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = outs[packet.stream.index]
            dst.mux(packet)
    return frames[hidden:]


def vfr_clip(path, intervals_ms, rate: int = 16000, flashes=()) -> list[int]:
    """A variable-frame-rate clip (timestamps in ms, as phones write) with audio as long as the video. Frames in
    ``flashes`` are white and the audio has a click at each of their timestamps (for A/V sync checks); else dark
    frames and silence. Returns the timestamps (ms)."""
    pts = [0]
    for d in intervals_ms:
        pts.append(pts[-1] + d)
    end = pts[-1] + intervals_ms[-1]
    wave = np.zeros((1, int(end / 1000 * rate)), np.float32)
    frames = []
    for i, p in enumerate(pts):
        frames.append(np.full((48, 64, 3), 235 if i in flashes else 20, np.uint8))
        if i in flashes:
            k = int(p / 1000 * rate)
            wave[0, k:k + rate // 100] = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(rate // 100) / rate)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=rate)
        a.layout = "mono"
        _encode_video(c, s, frames, pts, Fraction(1, 1000))
        _encode_audio(c, a, wave, rate, "mono")
    return pts


def odd_sized_clip(path, n: int = 6, hw=(179, 321)) -> list[np.ndarray]:
    """An odd-sized clip (lossless PNG in MOV: H.264 4:2:0 cannot hold odd sizes). Returns its frames."""
    frames = [picture(i, *hw) for i in range(n)]
    with av.open(str(path), "w") as c:
        s = c.add_stream("png", rate=24)
        s.width, s.height, s.pix_fmt = hw[1], hw[0], "rgb24"
        _encode_video(c, s, frames)
    return frames


def truncated_faststart(path, n: int = 24) -> None:
    """A faststart MP4 (index first) whose download stopped a third of the way: the header lists ``n`` frames."""
    whole = path.with_name(path.stem + "_whole.mp4")
    rng = np.random.default_rng(0)
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        _encode_video(c, s, [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(n)])
    data = whole.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def alpha_clip(path, kind: str = "prores", n: int = 4) -> None:
    """A clip with transparency: ProRes 4444 (yuva444p10le, MOV) or VP9 with alpha (yuva420p, WebM)."""
    codec, fmt = {"prores": ("prores_ks", "yuva444p10le"), "vp9": ("libvpx-vp9", "yuva420p")}[kind]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, fmt
        if kind == "prores":
            s.options = {"profile": "4444"}
        frames = []
        for i in range(n):
            rgba = np.zeros((48, 64, 4), np.uint8)
            rgba[..., :3] = picture(i, 48, 64)
            rgba[..., 3] = 0
            rgba[12:36, 16:48, 3] = 255  # an opaque logo on a transparent field
            frames.append(av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format=fmt))
        _encode_video(c, s, frames)
