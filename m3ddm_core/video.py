"""Outpaint a whole frame sequence: canvases -> VAE encode (cached) -> coarse-to-fine sampling -> decode.

The VAE is passed in as two callables so this module stays free of any VAE implementation:
``encode(pixels [k, ch, cw, 3] float 0..1) -> latents [k, 4, ch/8, cw/8]`` already scaled by 0.18215, and
``decode(latents) -> pixels [k, ch, cw, 3] float 0..1``. Every source frame's two canvases are built and encoded
at most once, when a window first needs them, so memory holds latents, never all canvases.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .canvas import CanvasPlan, build_canvas
from .sampler import clip_conditioning, sample_clip
from .schedule import CLIP_FRAMES, Strides, official_window_schedule, pass_writes, plan_schedule

GLOBAL_FRAMES = 16
EncodeFn = Callable[[torch.Tensor], torch.Tensor]
DecodeFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SampleSettings:
    steps: int = 50
    s1: float = 2.0  # context guidance
    s2: float = 4.0  # global-frame guidance
    scheduler: str = "pndm"
    seed: int = 0
    sequential: bool = False  # low-VRAM: one UNet call per guidance branch


def global_frame_indexes(num_frames: int, count: int = GLOBAL_FRAMES) -> list[int]:
    """``linspace(0, N-1, 16)`` truncated to integers, as the official code picks them."""
    return [int(i) for i in np.linspace(0, num_frames - 1, count).astype(int)]


def window_noise(seed: int, index: int, shape: Sequence[int]) -> torch.Tensor:
    """Noise for sampling pass ``index`` from a CPU generator: the same seed gives the same video on any device."""
    gen = torch.Generator(device="cpu").manual_seed((int(seed) + 7919 * index) % (2 ** 63))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32)


def _frame_array(frames, i: int) -> np.ndarray:
    f = frames[i]
    return f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)


@dataclass
class LatentCache:
    """Per-video cache of each frame's (prefilled, masked) canvas latents; counts encoded images."""

    frames: object
    plan: CanvasPlan
    encode: EncodeFn
    prefilled: dict = field(default_factory=dict)
    masked: dict = field(default_factory=dict)
    encoded_images: int = 0

    def _encode(self, images: list[np.ndarray]) -> torch.Tensor:
        pixels = torch.from_numpy(np.stack(images)).float() / 255.0
        self.encoded_images += len(images)
        return self.encode(pixels).float().cpu()

    def ensure(self, indexes: Sequence[int], need_masked: Sequence[int] = ()) -> None:
        """Encode the prefilled canvases of ``indexes`` and the masked ones of ``need_masked`` if missing."""
        todo_p = [i for i in dict.fromkeys(indexes) if i not in self.prefilled]
        todo_m = [i for i in dict.fromkeys(need_masked) if i not in self.masked]
        built = {i: build_canvas(_frame_array(self.frames, i), self.plan) for i in dict.fromkeys(todo_p + todo_m)}
        images = [built[i][0] for i in todo_p] + [built[i][1] for i in todo_m]
        if not images:
            return
        latents = self._encode(images)
        for k, i in enumerate(todo_p):
            self.prefilled[i] = latents[k]
        for k, i in enumerate(todo_m):
            self.masked[i] = latents[len(todo_p) + k]


@dataclass
class OutpaintResult:
    canvases: torch.Tensor  # [N, ch, cw, 3] float 0..1, the generated working canvases
    latents: torch.Tensor  # [N, 4, h, w] final latents per frame
    passes: list
    encoded_images: int
    unet_calls: int


def latent_mask(plan: CanvasPlan) -> torch.Tensor:
    """The pixel mask nearest-resized to the latent grid ``[h, w]`` (1 = generate), as the official code does."""
    pix = torch.from_numpy(plan.pixel_mask())[None, None]
    return F.interpolate(pix, size=plan.latent_hw)[0, 0]


@dataclass
class EncodedVideo:
    """The VAE side of a video: the latent cache, the unconditional latent and the 16 global-frame latents."""

    cache: LatentCache
    uncond_latent: torch.Tensor  # [1, 4, h, w]
    global_latents: torch.Tensor  # [16, 4, h, w]


@dataclass
class VideoContext:
    """What every sampling pass of one video shares (global tokens on the model's device)."""

    cache: LatentCache
    uncond_latent: torch.Tensor
    mask: torch.Tensor
    g_cond: torch.Tensor
    g_uncond: torch.Tensor


def encode_video(frames, plan: CanvasPlan, encode: EncodeFn, global_latents: Optional[torch.Tensor] = None,
                 preencode: bool = False) -> EncodedVideo:
    """All VAE encoding a video needs before the UNet runs (so the two need not alternate on the device).

    ``global_latents`` ``[16, 4, h, w]`` default to the masked canvases of frames ``linspace(0, N-1, 16)``, taken
    from the cache (no extra encode). ``preencode`` encodes both canvases of every frame now, in batches of 16;
    otherwise passes encode what they need on first use.
    """
    n = len(frames)
    if n < 1:
        raise ValueError("the video has no frames")
    cache = LatentCache(frames, plan, encode)
    if preencode:
        for i in range(0, n, CLIP_FRAMES):
            idx = list(range(i, min(n, i + CLIP_FRAMES)))
            cache.ensure(idx, need_masked=idx)
    if global_latents is None:
        global_latents = global_frame_latents(cache)
    black = torch.zeros(1, *plan.canvas_hw, 3)  # the unconditional canvas: all black (-1 in VAE range)
    cache.encoded_images += 1
    return EncodedVideo(cache, encode(black).float().cpu(), global_latents)


def global_frame_latents(cache: LatentCache) -> torch.Tensor:
    """The 16 global frames' masked-canvas latents ``[16, 4, h, w]``, frames ``linspace(0, N-1, 16)`` (cached)."""
    idx = global_frame_indexes(len(cache.frames))
    cache.ensure([], need_masked=idx)
    return torch.stack([cache.masked[i] for i in idx])


def plan_passes(n: int, strides: Strides = "auto", schedule: str = "fixed") -> list[dict]:
    """The sampling passes of an ``n``-frame video: ``"fixed"`` (every frame generated exactly once) or
    ``"official"`` (the official windows; frames they never generate are an error). Raises ValueError."""
    if schedule not in ("fixed", "official"):
        raise ValueError(f"schedule {schedule!r} is unknown; use 'fixed' or 'official'")
    if schedule == "fixed":
        return plan_schedule(n, strides)
    passes = official_window_schedule(n)
    missing = sorted(set(range(n)) - {f for p in passes for f in p["frames"]})
    if missing:
        raise ValueError(f"the official schedule never generates frames {missing[:8]} of this {n}-frame video; "
                         "use the default ('fixed') schedule")
    return passes


def video_context(model, encoded: EncodedVideo, plan: CanvasPlan) -> VideoContext:
    """Global-frame tokens (conditional and unconditional) computed once per video on the model's device."""
    device, dtype = model.device, model.dtype
    with torch.no_grad():
        g_cond = model.encode_global(encoded.global_latents.to(device, dtype))
        g_uncond = model.encode_global(torch.zeros_like(encoded.global_latents).to(device, dtype))
    return VideoContext(encoded.cache, encoded.uncond_latent, latent_mask(plan), g_cond, g_uncond)


def sample_pass(model, ctx: VideoContext, frames_k: Sequence[int], guides: dict[int, torch.Tensor], fps: int,
                settings: SampleSettings, noise_index: int, callback=None, check_interrupt=None) -> torch.Tensor:
    """Sample one clip of source frames ``frames_k`` (16 indexes, repeats allowed). ``guides`` maps frame index ->
    its already generated latent ``[4, h, w]``; those frames condition the clip with mask 0.
    Returns the clip's final latents ``[1, 4, F, h, w]``."""
    device = model.device
    is_guide = [f in guides for f in frames_k]
    ctx.cache.ensure(frames_k, need_masked=[f for f, g in zip(frames_k, is_guide) if not g])
    masked = torch.stack([guides[f] if g else ctx.cache.masked[f] for f, g in zip(frames_k, is_guide)])
    pos_guides = {pos: guides[f].to(device) for pos, (f, g) in enumerate(zip(frames_k, is_guide)) if g}
    cond = clip_conditioning(masked.to(device), ctx.uncond_latent.to(device), ctx.mask.to(device), pos_guides,
                             ctx.g_cond, ctx.g_uncond)
    start = torch.stack([ctx.cache.prefilled[f] for f in frames_k]).permute(1, 0, 2, 3).unsqueeze(0).to(device)
    h, w = ctx.mask.shape
    noise = window_noise(settings.seed, noise_index, (1, 4, len(frames_k), h, w)).to(device)
    return sample_clip(model, start, cond, noise, fps, settings.steps, settings.s1, settings.s2, settings.scheduler,
                       callback, check_interrupt, settings.sequential)


def decode_latents(decode: DecodeFn, latents: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """``[N, 4, h, w]`` scaled latents -> ``[N, ch, cw, 3]`` float 0..1, decoded in batches."""
    out = [decode(latents[i:i + batch]).float().cpu() for i in range(0, latents.shape[0], batch)]
    return torch.cat(out).clamp(0, 1)


def outpaint_video(model, frames, plan: CanvasPlan, encode: Optional[EncodeFn], decode: DecodeFn, fps: float,
                   settings: SampleSettings = SampleSettings(), strides: Strides = "auto", schedule: str = "fixed",
                   callback: Optional[Callable[[dict], None]] = None,
                   check_interrupt: Optional[Callable[[], None]] = None,
                   encoded: Optional[EncodedVideo] = None, decode_batch: int = 16) -> OutpaintResult:
    """Outpaint ``frames`` (``[N, H, W, 3]`` tensor/array or a sequence of frames, uint8 or float 0..1).

    ``schedule``: see :func:`plan_passes`. ``callback`` gets ``{"pass", "passes", "i", "total", "t", "x",
    "denoised", "frames"}`` after every step; ``check_interrupt`` is called before every step and may raise.
    ``encoded`` (from :func:`encode_video`) skips the encoding step when the caller did it already (``encode`` may
    then be None).
    """
    n = len(frames)
    if n < 1:
        raise ValueError("the video has no frames")
    passes = plan_passes(n, strides, schedule)
    if encoded is None:
        encoded = encode_video(frames, plan, encode)
    ctx = video_context(model, encoded, plan)
    final: dict[int, torch.Tensor] = {}
    for k, p in enumerate(passes):
        guides = {f: final[f] for f, g in zip(p["frames"], p["is_guide"]) if g}

        def step_cb(info, k=k, p=p):
            if callback is not None:
                callback(dict(info, **{"pass": k, "passes": len(passes), "frames": p["frames"]}))

        latents = sample_pass(model, ctx, p["frames"], guides, int(fps // p["fps_divisor"]), settings, k,
                              step_cb, check_interrupt)
        for pos, frame in pass_writes(p):
            final[frame] = latents[0, :, pos].float().cpu()
    latents = torch.stack([final[i] for i in range(n)])
    canvases = decode_latents(decode, latents, decode_batch)
    return OutpaintResult(canvases, latents, passes, ctx.cache.encoded_images, len(passes) * settings.steps)
