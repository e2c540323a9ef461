"""Streamed encode and composite (m3ddm_core.media.stream) against the in-memory path, and a file-to-file run."""
from fractions import Fraction

import numpy as np
import torch

from helpers import TinyVAE, load_clip, original_region_psnr
from m3ddm_core import SampleSettings, composite, encode_video, outpaint_video
from m3ddm_core.media.stream import composite_frames
from m3ddm_core.media.video_io import VideoWriter, probe, read_audio, read_frames

FAST = SampleSettings(steps=1, s1=1.0, s2=1.0)


def _uint8(frames: torch.Tensor) -> list[np.ndarray]:
    return list((frames * 255).round().to(torch.uint8).numpy())


def test_streamed_encode_equals_the_in_memory_encode(plan):
    """One encoder for both: uint8 frames streaming in from an iterator, 8 at a time, give the latents of the
    IMAGE batch (float 0..1, in memory, 16 at a time)."""
    clip = load_clip(21)
    frames = _uint8(clip)
    vae = TinyVAE()
    ref = encode_video(clip, 21, plan, vae.encode)
    done = []
    streamed = encode_video(iter(frames), len(frames), plan, vae.encode, batch=8, on_chunk=done.append)
    assert done == [8, 16, 21]
    assert streamed.encoded_images == ref.encoded_images == vae.encoded_images / 2 == 2 * 21 + 1
    assert torch.equal(streamed.prefilled, ref.prefilled) and torch.equal(streamed.masked, ref.masked)
    assert streamed.prefilled.shape == (21, 4, *plan.latent_hw)
    assert torch.equal(streamed.global_latents[0], ref.global_latents[0])
    assert torch.equal(streamed.uncond, ref.uncond)


def test_streamed_composite_equals_the_in_memory_composite_and_keeps_originals(plan):
    frames = _uint8(load_clip(11))
    vae = TinyVAE()
    latents = torch.randn(11, 4, *plan.latent_hw, generator=torch.Generator().manual_seed(0)) * 0.5
    streamed = list(composite_frames(iter(frames), latents, plan, vae.decode, feather=6, batch=4))
    original = torch.from_numpy(np.stack(frames)).float() / 255
    ref = composite(original, vae.decode(latents).clamp(0, 1), plan, 6)
    assert len(streamed) == 11 and streamed[0].shape == (*plan.output_hw, 3) and streamed[0].dtype == np.uint8
    np.testing.assert_array_equal(np.stack(streamed), (ref * 255).round().to(torch.uint8).numpy())
    y0, x0 = plan.content_out_yx
    for src, out in zip(frames, streamed):
        np.testing.assert_array_equal(out[y0:y0 + src.shape[0], x0:x0 + src.shape[1]], src)


def test_streamed_composite_applies_the_upscaler_per_chunk(plan):
    frames = _uint8(load_clip(5))
    vae, seen = TinyVAE(), []

    def upscale(x):
        seen.append(x.shape[0])
        return torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), scale_factor=2).permute(0, 2, 3, 1)

    out = list(composite_frames(iter(frames), torch.zeros(5, 4, *plan.latent_hw), plan, vae.decode, batch=2,
                                upscale=upscale))
    assert seen == [2, 2, 1] and len(out) == 5


def _sine(seconds: float, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 330 * t)]).astype(np.float32) * 0.3


def test_file_to_file_keeps_count_fps_audio_and_the_original_region(micro_model, plan, tmp_path):
    """Source file -> range -> streamed encode -> sampling -> streamed composite -> file: the output has the
    range's frame count, the source's fps, the range's audio, and the source frames in its content box."""
    fps = Fraction(24000, 1001)
    src = tmp_path / "src.mp4"
    clip = _uint8(load_clip(30))
    with VideoWriter(src, fps, 208, 120, audio=(_sine(30 / float(fps)), 22050)) as w:
        for f in clip:
            w.write(f)
    info = probe(src)
    assert (info.frames, info.fps, info.width, info.height) == (30, fps, 208, 120)
    start, count = 5, 20
    vae = TinyVAE()
    encoded = encode_video(read_frames(src, start, count), count, plan, vae.encode)
    result = outpaint_video(micro_model, range(count), plan, None, None, float(fps), FAST, seed=1, encoded=encoded)
    assert result.canvases is None and result.latents.shape[0] == count
    out_path = tmp_path / "out.mp4"
    audio = read_audio(src, start / fps, (start + count) / fps)
    with VideoWriter(out_path, fps, plan.output_hw[1], plan.output_hw[0], audio=audio) as w:
        for frame in composite_frames(read_frames(src, start, count), result.latents, plan, vae.decode):
            w.write(frame)
    out = probe(out_path)
    assert (out.frames, out.fps, (out.height, out.width)) == (count, fps, tuple(plan.output_hw))
    got_audio = read_audio(out_path, 0, 10)
    assert got_audio is not None and got_audio[1] == 22050
    assert abs(got_audio[0].shape[1] / 22050 - count / float(fps)) < 0.05  # AAC pads by under a frame
    # Against the codec tolerance measured alongside (helpers.original_region_psnr): about 33.7 dB on this small
    # noisy clip at crf 18, the content sitting at an odd row (125) so 4:2:0 chroma blocks straddle the source's.
    for got, tolerance in original_region_psnr(src, out_path, (plan.output_hw, plan.content_out_yx), start, count,
                                               tmp_path):
        assert got > 30 and got >= tolerance - 1.0, (got, tolerance)
