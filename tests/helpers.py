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
