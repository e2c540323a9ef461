"""Sinusoidal embeddings (timestep, fps, frame position) and their two-layer MLP."""
from __future__ import annotations

import math

import torch
from torch import nn

# The official Timesteps module defaults to a max period of 1000 (not diffusers' 10000);
# the fps embedding uses 30.
TIME_MAX_PERIOD = 1000
FPS_MAX_PERIOD = 30


def sinusoidal_embedding(positions: torch.Tensor, channels: int, flip_sin_to_cos: bool, shift: float,
                         max_period: float = TIME_MAX_PERIOD) -> torch.Tensor:
    """``[N]`` positions (float or int) -> ``[N, channels]`` float32 sin/cos features."""
    half = channels // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=positions.device)
    freqs = torch.exp(exponent / (half - shift))
    args = positions[:, None].float() * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)] if flip_sin_to_cos else [torch.sin(args), torch.cos(args)], dim=-1)
    if channels % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """linear -> SiLU -> linear."""

    def __init__(self, in_channels: int, out_channels: int, ops, device=None, dtype=None):
        super().__init__()
        self.linear_1 = ops.Linear(in_channels, out_channels, device=device, dtype=dtype)
        self.act = nn.SiLU()
        self.linear_2 = ops.Linear(out_channels, out_channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))
