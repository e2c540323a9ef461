"""Small real components for pipeline tests: a random-weight convolutional VAE and the shipped clip."""
from pathlib import Path

import numpy as np
import torch
from torch import nn

DATA = Path(__file__).resolve().parent / "data"
SCALE = 0.18215


class TinyVAE(nn.Module):
    """8x down/up-sampling autoencoder with random weights; latents are scaled like SD's (x0.18215).
    Counts encoded images."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.enc = nn.Conv2d(3, 4, 8, stride=8)
        self.dec = nn.ConvTranspose2d(4, 3, 8, stride=8)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        self.encoded_images = 0

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """[k, H, W, 3] 0..1 -> [k, 4, H/8, W/8] scaled latents."""
        self.encoded_images += pixels.shape[0]
        return self.enc(pixels.permute(0, 3, 1, 2) * 2 - 1) * SCALE

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(latents / SCALE)).permute(0, 2, 3, 1)


def load_clip(n: int | None = None) -> torch.Tensor:
    """The shipped real clip (33 frames, 208x120) as IMAGE-style ``[N, H, W, 3]`` float 0..1, looped to ``n``."""
    from PIL import Image, ImageSequence

    im = Image.open(DATA / "clip_208x120.webp")
    frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    if n is not None:
        frames = [frames[i % len(frames)] for i in range(n)]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def original_region_psnr(source, output, plan_hw_yx, start: int = 0, count: int | None = None, tmp=None):
    """Per-frame PSNR (dB) of the source frames in the output's content box, each with the codec tolerance
    measured alongside: the same source frames placed at the same offset in a black frame of the output size,
    through one H.264 generation like the output's. ``plan_hw_yx`` = (output_hw, content_out_yx)."""
    from fractions import Fraction

    from m3ddm_core import VideoWriter, probe, read_frames
    (oh, ow), (y0, x0) = plan_hw_yx
    info = probe(source)
    count = count or info.frames - start
    baseline = tmp / "codec_baseline.mp4"
    with VideoWriter(baseline, Fraction(info.fps), ow, oh) as w:
        for f in read_frames(source, start, count):
            placed = np.zeros((oh, ow, 3), np.uint8)
            placed[y0:y0 + f.shape[0], x0:x0 + f.shape[1]] = f
            w.write(placed)

    def psnr(a, b):
        mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
        return float(10 * np.log10(255 ** 2 / max(mse, 1e-10)))
    pairs = []
    for src, out, ref in zip(read_frames(source, start, count), read_frames(output), read_frames(baseline)):
        h, w = src.shape[:2]
        pairs.append((psnr(out[y0:y0 + h, x0:x0 + w], src), psnr(ref[y0:y0 + h, x0:x0 + w], src)))
    assert len(pairs) == count
    return pairs


def write_audio_only(path, seconds: float = 0.5, rate: int = 16000):
    """A file with one silent AAC stream and no video stream."""
    import av
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=rate)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, int(seconds * rate)), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = rate, 0
        for p in (*s.encode(f), *s.encode(None)):
            c.mux(p)
    return path


def full_frame_composite(orig, gen, plan, feather):
    """The composite written the plain way, as an independent check and benchmark baseline: every output pixel
    of ``[N, H, W, 3]`` frames resampled from ``gen`` and blended, then the original pasted."""
    from m3ddm_core.pipeline.composite import feather_weights
    (fh, fw), (oh, ow) = plan.frame_hw, plan.output_hw
    (y0, x0), (by, bx, bh, bw), (ch, cw) = plan.content_out_yx, plan.content_box, plan.canvas_hw
    cy = by + (torch.arange(oh, dtype=torch.float64) + 0.5 - y0) * (bh / fh)
    cx = bx + (torch.arange(ow, dtype=torch.float64) + 0.5 - x0) * (bw / fw)
    gy, gx = torch.meshgrid(cy / ch * 2 - 1, cx / cw * 2 - 1, indexing="ij")
    grid = torch.stack([gx, gy], -1).float()[None].expand(len(orig), -1, -1, -1)
    res = torch.nn.functional.grid_sample(gen.permute(0, 3, 1, 2), grid, mode="bicubic", padding_mode="border",
                                          align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)
    ey = torch.clamp(torch.arange(oh) - y0, 0, fh - 1)
    ex = torch.clamp(torch.arange(ow) - x0, 0, fw - 1)
    w = feather_weights(plan, feather)[None, :, :, None]
    out = w * res + (1 - w) * orig[:, ey][:, :, ex]
    out[:, y0:y0 + fh, x0:x0 + fw] = orig
    return out

