"""Attention kernels and the spatio-temporal transformer of the M3DDM UNet.

Every attention call goes through one function with ComfyUI's ``optimized_attention`` signature,
``fn(q, k, v, heads) -> out`` on ``[batch, tokens, heads*dim_head]`` tensors, so the ComfyUI layer can swap in
its own kernel. Layers come from an injectable ``ops`` namespace (default ``torch.nn``) for ``comfy.ops``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .embeddings import TimestepEmbedding, sinusoidal_embedding

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Default kernel: ``torch.nn.functional.scaled_dot_product_attention``."""
    out = F.scaled_dot_product_attention(_split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads))
    return _merge_heads(out)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """The official computation: explicit ``softmax(q k^T * scale) v`` (reference path of the benchmarks)."""
    q, k, v = (_split_heads(t, heads) for t in (q, k, v))
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    return _merge_heads(torch.matmul(scores.softmax(dim=-1), v))


class ProjectedGlobalTokens:
    """Global tokens together with every cross-attention layer's K/V projection of them.

    The global tokens are constant for all steps of a clip (and all clips of a video), so their K/V can be
    projected once (:meth:`M3DDMUNet.project_global_tokens`) instead of at every step -- and, unlike the
    official per-frame ``expand``, once per clip rather than once per frame.
    """

    def __init__(self, tokens: torch.Tensor, kv: dict):
        self.tokens = tokens
        self.kv = kv

    @property
    def shape(self) -> torch.Size:
        return self.tokens.shape


class CrossAttention(nn.Module):
    """Multi-head attention: cross-attention to the global tokens when the layer has a ``tokens_dim``,
    self-attention otherwise.

    Global tokens with fewer batch items than the query mean "the same tokens for groups of consecutive query
    items" (all frames of a clip share them): the group is folded into the token axis so the tokens are
    projected to K/V once per clip instead of once per frame. Attention rows are independent, so this is the
    same result as the official per-frame ``expand``.
    """

    def __init__(self, dim: int, heads: int, tokens_dim: Optional[int], ops, attention: AttentionFn,
                 device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.heads = heads
        self.attention = attention
        self.is_cross = tokens_dim is not None
        self.to_q = ops.Linear(dim, dim, bias=False, **kw)
        self.to_k = ops.Linear(tokens_dim or dim, dim, bias=False, **kw)
        self.to_v = ops.Linear(tokens_dim or dim, dim, bias=False, **kw)
        self.to_out = nn.ModuleList([ops.Linear(dim, dim, **kw), nn.Identity()])  # keys to_out.0.* as official

    def project(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to_k(tokens), self.to_v(tokens)

    def forward(self, x: torch.Tensor, global_tokens=None) -> torch.Tensor:
        """x ``[N, L, C]``; global_tokens ``[N/g, T, C_tok]`` tensor or :class:`ProjectedGlobalTokens`
        (self-attention if None)."""
        q = self.to_q(x)
        if global_tokens is None:
            k, v = self.to_k(x), self.to_v(x)
            out = self.attention(q, k, v, self.heads)
        else:
            groups = x.shape[0] // global_tokens.shape[0]
            if isinstance(global_tokens, ProjectedGlobalTokens):
                k, v = global_tokens.kv[self]
            else:
                k, v = self.project(global_tokens)
            n, length, dim = q.shape
            out = self.attention(q.reshape(n // groups, groups * length, dim), k, v, self.heads)
            out = out.reshape(n, length, dim)
        return self.to_out[0](out)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, ops, device=None, dtype=None):
        super().__init__()
        self.proj = ops.Linear(dim_in, dim_out * 2, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, ops, device=None, dtype=None):
        super().__init__()
        inner = dim * 4
        self.net = nn.ModuleList([GEGLU(dim, inner, ops, device, dtype), nn.Identity(),
                                  ops.Linear(inner, dim, device=device, dtype=dtype)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, (cross-)attention, GEGLU feed-forward, each with a residual."""

    def __init__(self, dim: int, heads: int, tokens_dim: Optional[int], ops, attention: AttentionFn,
                 device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.attn1 = CrossAttention(dim, heads, None, ops, attention, **kw)
        self.ff = FeedForward(dim, ops, **kw)
        self.attn2 = CrossAttention(dim, heads, tokens_dim, ops, attention, **kw)
        self.norm1 = ops.LayerNorm(dim, **kw)
        self.norm2 = ops.LayerNorm(dim, **kw)
        self.norm3 = ops.LayerNorm(dim, **kw)

    def forward(self, x: torch.Tensor, global_tokens=None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), global_tokens) + x
        return self.ff(self.norm3(x)) + x


class SpatialTemporalTransformer(nn.Module):
    """Spatial transformer per frame (cross-attending to the global-frame tokens), then a temporal
    transformer per pixel (self-attention over frames, sinusoidal frame-position embedding)."""

    # The frame-position embedding is always 320 wide, whatever the block width.
    POSITION_CHANNELS = 320

    def __init__(self, channels: int, heads: int, groups: int, tokens_dim: int, ops, attention: AttentionFn,
                 device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.norm = ops.GroupNorm(groups, channels, eps=1e-6, **kw)
        self.proj_in = ops.Conv2d(channels, channels, kernel_size=1, **kw)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, heads, tokens_dim, ops, attention, **kw)])
        self.proj_out = ops.Conv2d(channels, channels, kernel_size=1, **kw)
        self.temporal_position_embed_proj = TimestepEmbedding(self.POSITION_CHANNELS, channels, ops, **kw)
        self.norm2 = ops.GroupNorm(groups, channels, eps=1e-6, **kw)
        self.proj_in2 = ops.Conv3d(channels, channels, kernel_size=1, **kw)
        self.transformer_blocks2 = nn.ModuleList([BasicTransformerBlock(channels, heads, None, ops, attention, **kw)])
        self.proj_out2 = ops.Conv3d(channels, channels, kernel_size=1, **kw)

    def forward(self, x: torch.Tensor, global_tokens) -> torch.Tensor:
        """x ``[B, C, F, H, W]``; global_tokens ``[B, T, C_tok]`` shared by all frames of a batch item."""
        b, c, f, h, w = x.shape
        frames = rearrange(x, "b c f h w -> (b f) c h w")
        hidden = rearrange(self.proj_in(self.norm(frames)), "n c h w -> n (h w) c")
        for block in self.transformer_blocks:
            hidden = block(hidden, global_tokens)
        frames = self.proj_out(rearrange(hidden, "n (h w) c -> n c h w", h=h)) + frames
        x = rearrange(frames, "(b f) c h w -> b c f h w", b=b)

        hidden = rearrange(self.proj_in2(self.norm2(x)), "b c f h w -> (b h w) f c")
        steps = torch.arange(f, device=x.device, dtype=hidden.dtype)
        position = sinusoidal_embedding(steps, self.POSITION_CHANNELS, flip_sin_to_cos=True, shift=0).to(hidden.dtype)
        hidden = hidden + self.temporal_position_embed_proj(position).view(1, f, c)
        for block in self.transformer_blocks2:
            hidden = block(hidden)
        return self.proj_out2(rearrange(hidden, "(b h w) f c -> b c f h w", b=b, h=h)) + x
