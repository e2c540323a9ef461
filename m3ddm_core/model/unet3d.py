"""The M3DDM 3D UNet: SD1.5-style UNet with pseudo-3D convolutions, spatio-temporal transformers,
fps conditioning and a global-frame encoder whose tokens every cross-attention attends to.

Layout convention: video tensors are ``[batch, channels, frames, height, width]``.
Parameter names equal the official checkpoint's (``build_unet(cfg).state_dict()`` keys == released keys).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping, Optional, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import AttentionFn, CrossAttention, ProjectedGlobalTokens, SpatialTemporalTransformer, sdpa_attention
from .config import CROSS_ATTN_DOWN, CROSS_ATTN_UP, UNetConfig, parse_config
from .embeddings import FPS_MAX_PERIOD, TimestepEmbedding, sinusoidal_embedding
from .global_encoder import GlobalFrameEncoder

TORCH_OPS = SimpleNamespace(Linear=nn.Linear, Conv1d=nn.Conv1d, Conv2d=nn.Conv2d, Conv3d=nn.Conv3d,
                            GroupNorm=nn.GroupNorm, LayerNorm=nn.LayerNorm)


# Where one conv3d per factor beats the per-frame conv2d + per-pixel conv1d (no layout copies): on the CPU 1.47x
# per layer and 1.03-1.13x per guided step of the medium model in fp32 and bf16, but 0.22x per layer in fp16
# (benchmarks/candidates.py). Other devices keep the per-frame route until measured there.
CONV3D_DEVICES = {"cpu"}
CONV3D_DTYPES = {torch.float32, torch.bfloat16}


CONV_ROUTES = ("auto", "per_frame", "conv3d")


class Pseudo3DConv(nn.Module):
    """A 2D spatial conv on every frame followed by a 1D temporal conv on every pixel.

    ``route`` (set by the caller through :meth:`M3DDMUNet.set_conv_route`, as attention is): ``auto`` takes the
    conv3d route where it was measured faster, ``per_frame`` always runs the layers' own forward (a caller whose
    layers cast, stream or patch their weights inside it needs that), ``conv3d`` always the conv3d views."""

    route = "auto"

    def __init__(self, cin: int, cout: int, ops, kernel: int = 3, device=None, dtype=None):
        super().__init__()
        self.spatial_conv = ops.Conv2d(cin, cout, kernel, padding=kernel // 2, device=device, dtype=dtype)
        self.temporal_conv = ops.Conv1d(cout, cout, kernel, padding=kernel // 2, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, F, H, W]`` -> ``[B, C_out, F, H, W]``."""
        route = self.route
        if route == "auto":
            route = "conv3d" if x.device.type in CONV3D_DEVICES and x.dtype in CONV3D_DTYPES else "per_frame"
        return self.forward_conv3d(x) if route == "conv3d" else self.forward_per_frame(x)

    def forward_per_frame(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        x = self.spatial_conv(rearrange(x, "b c f h w -> (b f) c h w"))
        x = self.temporal_conv(rearrange(x, "(b f) c h w -> (b h w) c f", b=b))
        return rearrange(x, "(b h w) c f -> b c f h w", b=b, h=h)

    def forward_conv3d(self, x: torch.Tensor) -> torch.Tensor:
        """The same convolutions as 1xkxk and kx1x1 conv3d on the video layout, with views of the same weights."""
        s, t = self.spatial_conv, self.temporal_conv
        pad = s.padding[0]
        x = F.conv3d(x, s.weight[:, :, None], s.bias, padding=(0, pad, pad))
        return F.conv3d(x, t.weight[:, :, :, None, None], t.bias, padding=(t.padding[0], 0, 0))


class ResnetBlockP3D(nn.Module):
    """GroupNorm-SiLU-conv twice, time and fps embeddings added in between, 1x1x1 shortcut if widths differ."""

    def __init__(self, cin: int, cout: int, temb: int, groups: int, eps: float, scale: float, ops, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.norm1 = ops.GroupNorm(groups, cin, eps=eps, **kw)
        self.conv1 = Pseudo3DConv(cin, cout, ops, **kw)
        self.time_emb_proj = ops.Linear(temb, cout, **kw)
        self.fps_emb_proj = ops.Linear(temb, cout, **kw)
        self.norm2 = ops.GroupNorm(groups, cout, eps=eps, **kw)
        self.conv2 = Pseudo3DConv(cout, cout, ops, **kw)
        self.conv_shortcut = ops.Conv3d(cin, cout, kernel_size=1, **kw) if cin != cout else None
        self.output_scale_factor = scale

    def forward(self, x: torch.Tensor, temb: torch.Tensor, femb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None, None]
        h = h + self.fps_emb_proj(F.silu(femb))[:, :, None, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        out = x + h
        return out if self.output_scale_factor == 1 else out / self.output_scale_factor


class Downsample3D(nn.Module):
    def __init__(self, channels: int, padding: int, ops, device=None, dtype=None):
        super().__init__()
        self.padding = padding
        self.conv = ops.Conv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, padding, padding),
                               device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample3D(nn.Module):
    def __init__(self, channels: int, ops, device=None, dtype=None):
        super().__init__()
        self.conv = ops.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1), device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, size: Optional[tuple[int, int]] = None) -> torch.Tensor:
        f = x.shape[2]
        x = F.interpolate(x, size=(f, *size) if size else None, scale_factor=None if size else (1.0, 2.0, 2.0), mode="nearest")
        return self.conv(x)


class DownBlock(nn.Module):
    """``CrossAttnDownBlock3D`` (with attentions) or ``DownBlockP3D`` (without)."""

    def __init__(self, cin: int, cout: int, cfg: UNetConfig, attention: bool, downsample: bool, ops, attn_fn: AttentionFn,
                 device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        n = cfg.layers_per_block
        # Registration order (attentions before resnets) gives the official state-dict order.
        self.attentions = nn.ModuleList([SpatialTemporalTransformer(cout, cfg.attention_heads, cfg.norm_num_groups,
                                                                    cfg.cross_attention_dim, ops, attn_fn, **kw)
                                         for _ in range(n)]) if attention else None
        self.resnets = nn.ModuleList([ResnetBlockP3D(cin if i == 0 else cout, cout, cfg.time_embed_dim, cfg.norm_num_groups,
                                                     cfg.norm_eps, 1.0, ops, **kw) for i in range(n)])
        self.downsamplers = nn.ModuleList([Downsample3D(cout, cfg.downsample_padding, ops, **kw)]) if downsample else None

    def forward(self, x, temb, femb, global_tokens):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb, femb)
            if self.attentions is not None:
                x = self.attentions[i](x, global_tokens)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """``CrossAttnUpBlock3D`` (with attentions) or ``UpBlockP3D`` (without)."""

    def __init__(self, cin: int, cout: int, prev: int, cfg: UNetConfig, attention: bool, upsample: bool, ops,
                 attn_fn: AttentionFn, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        n = cfg.layers_per_block + 1
        self.attentions = nn.ModuleList([SpatialTemporalTransformer(cout, cfg.attention_heads, cfg.norm_num_groups,
                                                                    cfg.cross_attention_dim, ops, attn_fn, **kw)
                                         for _ in range(n)]) if attention else None
        self.resnets = nn.ModuleList([
            ResnetBlockP3D((prev if i == 0 else cout) + (cin if i == n - 1 else cout), cout, cfg.time_embed_dim,
                           cfg.norm_num_groups, cfg.norm_eps, 1.0, ops, **kw) for i in range(n)])
        self.upsamplers = nn.ModuleList([Upsample3D(cout, ops, **kw)]) if upsample else None

    def forward(self, x, skips, temb, femb, global_tokens, size=None):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb, femb)
            if self.attentions is not None:
                x = self.attentions[i](x, global_tokens)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, size)
        return x


class MidBlock(nn.Module):
    def __init__(self, channels: int, cfg: UNetConfig, ops, attn_fn: AttentionFn, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        scale = cfg.mid_block_scale_factor
        self.attentions = nn.ModuleList([SpatialTemporalTransformer(channels, cfg.attention_heads, cfg.norm_num_groups,
                                                                    cfg.cross_attention_dim, ops, attn_fn, **kw)])
        self.resnets = nn.ModuleList([ResnetBlockP3D(channels, channels, cfg.time_embed_dim, cfg.norm_num_groups,
                                                     cfg.norm_eps, scale, ops, **kw) for _ in range(2)])

    def forward(self, x, temb, femb, global_tokens):
        x = self.resnets[0](x, temb, femb)
        x = self.attentions[0](x, global_tokens)
        return self.resnets[1](x, temb, femb)


class M3DDMUNet(nn.Module):
    """The M3DDM denoiser.

    Two calls: :meth:`encode_global` turns the 16 global-frame latents into global tokens (once per video,
    plus once for the all-zero "unconditional" latents), and :meth:`forward` denoises a batch of 9-channel clips
    against one sequence of global tokens per batch item.
    """

    def __init__(self, cfg: UNetConfig, ops=None, attention: AttentionFn = sdpa_attention, device=None, dtype=None,
                 raw_config: Optional[Mapping[str, Any]] = None):
        super().__init__()
        ops = ops or TORCH_OPS
        kw = {"device": device, "dtype": dtype}
        self.cfg = cfg
        self.raw_config = dict(raw_config or {})
        ch = cfg.block_out_channels
        temb = cfg.time_embed_dim
        self.conv_in = ops.Conv3d(cfg.in_channels, ch[0], (1, 3, 3), padding=(0, 1, 1), **kw)
        self.time_embedding = TimestepEmbedding(ch[0], temb, ops, **kw)
        self.fps_embedding = TimestepEmbedding(ch[0], temb, ops, **kw)

        self.down_blocks = nn.ModuleList()
        cout = ch[0]
        for i, kind in enumerate(cfg.down_block_types):
            cin, cout = cout, ch[i]
            self.down_blocks.append(DownBlock(cin, cout, cfg, kind == CROSS_ATTN_DOWN, i < len(ch) - 1, ops, attention, **kw))

        self.up_blocks = nn.ModuleList()
        rev = list(reversed(ch))
        cout = rev[0]
        for i, kind in enumerate(cfg.up_block_types):
            prev, cout = cout, rev[i]
            cin = rev[min(i + 1, len(ch) - 1)]
            self.up_blocks.append(UpBlock(cin, cout, prev, cfg, kind == CROSS_ATTN_UP, i < len(ch) - 1, ops, attention, **kw))

        # The official model assigns mid_block after up_blocks: keep its state-dict order.
        self.mid_block = MidBlock(ch[-1], cfg, ops, attention, **kw)
        self.conv_norm_out = ops.GroupNorm(cfg.norm_num_groups, ch[0], eps=cfg.norm_eps, **kw)
        self.conv_out = Pseudo3DConv(ch[0], cfg.out_channels, ops, **kw)
        self.global_img_encoder = GlobalFrameEncoder(**kw)
        self.eval()

    # -- plumbing -----------------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.conv_in.weight.device

    @device.setter
    def device(self, value) -> None:
        # Model managers (ComfyUI's ModelPatcher) record a load device here; the weights stay the source of truth.
        pass

    def set_attention(self, attention: AttentionFn) -> None:
        """Route every attention call through ``attention(q, k, v, heads)``."""
        for m in self.modules():
            if isinstance(m, CrossAttention):
                m.attention = attention

    def set_conv_route(self, route: str) -> None:
        """How every pseudo-3D convolution runs: ``auto``, ``per_frame`` or ``conv3d`` (:class:`Pseudo3DConv`)."""
        if route not in CONV_ROUTES:
            raise ValueError(f"conv route {route!r} is unknown; choose one of {', '.join(CONV_ROUTES)}")
        for m in self.modules():
            if isinstance(m, Pseudo3DConv):
                m.route = route

    def train(self, mode: bool = True):
        # Inference-only model: BatchNorm of the global encoder must keep its running statistics.
        return super().train(False)

    def project_global_tokens(self, tokens: torch.Tensor) -> ProjectedGlobalTokens:
        """Project global tokens ``[B, T, 320]`` to every cross-attention layer's K/V once; pass the result as
        ``global_tokens`` to :meth:`forward` for as many steps as the tokens stay the same."""
        tokens = tokens.to(self.dtype)
        with torch.no_grad():
            kv = {m: m.project(tokens) for m in self.modules() if isinstance(m, CrossAttention) and m.is_cross}
        return ProjectedGlobalTokens(tokens, kv)

    # -- the two calls --------------------------------------------------------------------------------------
    def encode_global(self, latents: torch.Tensor) -> torch.Tensor:
        """Global-frame latents ``[G, 4, h, w]`` (one video) or ``[B, G, 4, h, w]`` (scaled by 0.18215)
        -> global tokens ``[B, G*h'*w', 320]`` (``h' = h/2 - 2``; 3,136 tokens for 16 frames at 32x32)."""
        if latents.ndim == 4:
            latents = latents.unsqueeze(0)
        b, g = latents.shape[:2]
        enc = self.global_img_encoder
        feats = enc(rearrange(latents, "b g c h w -> (b g) c h w").to(enc.convolution.weight.dtype))
        return rearrange(feats, "(b g) c h w -> b (g h w) c", b=b).to(self.dtype)

    def forward(self, sample: torch.Tensor, timestep: Union[torch.Tensor, float, int],
                fps: Union[torch.Tensor, float, int], global_tokens) -> torch.Tensor:
        """Predict noise.

        sample: ``[B, 9, F, h, w]`` = noisy latent (4) | masked latent (4) | mask (1, 1 = generate).
        timestep: scalar or ``[B]``. fps: scalar or ``[B]``, truncated to an integer as the official code does.
        global_tokens: ``[B, T, 320]`` from :meth:`encode_global` (one sequence per batch item, shared by its
        frames), a :class:`ProjectedGlobalTokens` of them, or ``[B*F, T, 320]`` (one per frame: the official
        layout).
        Returns ``[B, 4, F, h, w]``.
        """
        b, f = sample.shape[0], sample.shape[2]
        if global_tokens.shape[0] not in (b, b * f):
            raise ValueError(f"global_tokens has {global_tokens.shape[0]} batch items, sample has {b}")
        dtype, device = self.dtype, sample.device
        sample = sample.to(dtype)
        if self.cfg.center_input_sample:
            sample = 2 * sample - 1.0
        t = torch.as_tensor(timestep, device=device).reshape(-1).expand(b)
        fps_t = torch.as_tensor(fps, device=device).reshape(-1).long().expand(b)
        ch0 = self.cfg.block_out_channels[0]
        temb = self.time_embedding(sinusoidal_embedding(t, ch0, self.cfg.flip_sin_to_cos, self.cfg.freq_shift).to(dtype))
        femb = self.fps_embedding(sinusoidal_embedding(fps_t, ch0, self.cfg.flip_sin_to_cos, self.cfg.freq_shift,
                                                       max_period=FPS_MAX_PERIOD).to(dtype))
        if not isinstance(global_tokens, ProjectedGlobalTokens):
            global_tokens = global_tokens.to(dtype)

        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, res = block(x, temb, femb, global_tokens)
            skips.extend(res)
        x = self.mid_block(x, temb, femb, global_tokens)
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            block_skips, skips = skips[-n:], skips[:-n]
            size = tuple(skips[-1].shape[-2:]) if skips and block.upsamplers is not None else None
            x = block(x, block_skips, temb, femb, global_tokens, size)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


def build_unet(config: Mapping[str, Any], device=None, dtype=None, ops=None,
               attention: AttentionFn = sdpa_attention) -> M3DDMUNet:
    """Build an M3DDM UNet from a diffusers-style config dict. ``device="meta"`` allocates nothing."""
    cfg = parse_config(config)
    return M3DDMUNet(cfg, ops=ops, attention=attention, device=device, dtype=dtype, raw_config=config)
