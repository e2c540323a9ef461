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
    """Per-video cache of each frame's (prefilled, masked) canvas latents; counts VAE work."""

    frames: object
    plan: CanvasPlan
    encode: EncodeFn
    prefilled: dict = field(default_factory=dict)
    masked: dict = field(default_factory=dict)
    encoded_images: int = 0
    encode_calls: int = 0

    def _encode(self, images: list[np.ndarray]) -> torch.Tensor:
        pixels = torch.from_numpy(np.stack(images)).float() / 255.0
        self.encode_calls += 1
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


def outpaint_video(model, frames, plan: CanvasPlan, encode: EncodeFn, decode: DecodeFn, fps: float,
                   settings: SampleSettings = SampleSettings(), strides: Strides = "auto", schedule: str = "fixed",
                   callback: Optional[Callable[[dict], None]] = None,
                   check_interrupt: Optional[Callable[[], None]] = None,
                   global_latents: Optional[torch.Tensor] = None,
                   decode_batch: int = 16) -> OutpaintResult:
    """Outpaint ``frames`` (``[N, H, W, 3]`` tensor/array or a sequence of frames, uint8 or float 0..1).

    ``schedule``: ``"fixed"`` (default: every frame generated exactly once) or ``"official"`` (the official
    passes; frames it never generates are an error). ``callback`` gets ``{"pass", "passes", "i", "total", "t",
    "x", "denoised", "frames"}`` after every step; ``check_interrupt`` is called before every step and may raise.
    ``global_latents`` ``[16, 4, h, w]`` overrides the global frames (default: the masked canvases of frames
    ``linspace(0, N-1, 16)``, reusing the cache).
    """
    n = len(frames)
    if n < 1:
        raise ValueError("the video has no frames")
    if schedule not in ("fixed", "official"):
        raise ValueError(f"schedule {schedule!r} is unknown; use 'fixed' or 'official'")
    passes = plan_schedule(n, strides) if schedule == "fixed" else official_window_schedule(n)
    if schedule == "official":
        missing = sorted(set(range(n)) - {f for p in passes for f in p["frames"]})
        if missing:
            raise ValueError(f"the official schedule never generates frames {missing[:8]} of this {n}-frame video; "
                             "use the default ('fixed') schedule")
    device, dtype = model.device, model.dtype
    cache = LatentCache(frames, plan, encode)

    if global_latents is None:
        g_idx = global_frame_indexes(n)
        cache.ensure([], need_masked=g_idx)
        global_latents = torch.stack([cache.masked[i] for i in g_idx])
    h, w = plan.latent_hw
    black = torch.zeros(1, *plan.canvas_hw, 3)  # the unconditional canvas: all black (-1 in VAE range)
    cache.encode_calls += 1
    cache.encoded_images += 1
    uncond_latent = encode(black).float().cpu()
    mask = latent_mask(plan)
    with torch.no_grad():
        g_cond = model.encode_global(global_latents.to(device, dtype))
        g_uncond = model.encode_global(torch.zeros_like(global_latents).to(device, dtype))

    final: dict[int, torch.Tensor] = {}
    unet_calls = 0
    for k, p in enumerate(passes):
        frames_k, guides_k = p["frames"], p["is_guide"]
        cache.ensure(frames_k, need_masked=[f for f, g in zip(frames_k, guides_k) if not g])
        masked = torch.stack([final[f] if g else cache.masked[f] for f, g in zip(frames_k, guides_k)])
        guides = {pos: final[f] for pos, (f, g) in enumerate(zip(frames_k, guides_k)) if g}
        cond = clip_conditioning(masked.to(device), uncond_latent.to(device), mask.to(device),
                                 {i: v.to(device) for i, v in guides.items()}, g_cond, g_uncond)
        start = torch.stack([cache.prefilled[f] for f in frames_k]).permute(1, 0, 2, 3).unsqueeze(0).to(device)
        noise = window_noise(settings.seed, k, (1, 4, len(frames_k), h, w)).to(device)

        def step_cb(info, k=k, p=p):
            if callback is not None:
                callback(dict(info, **{"pass": k, "passes": len(passes), "frames": p["frames"]}))

        latents = sample_clip(model, start, cond, noise, int(fps // p["fps_divisor"]), settings.steps, settings.s1,
                              settings.s2, settings.scheduler, step_cb, check_interrupt, settings.sequential)
        unet_calls += settings.steps
        for pos, frame in pass_writes(p):
            final[frame] = latents[0, :, pos].float().cpu()

    latents = torch.stack([final[i] for i in range(n)])
    canvases = torch.cat([decode(latents[i:i + decode_batch]).float().cpu() for i in range(0, n, decode_batch)])
    return OutpaintResult(canvases.clamp(0, 1), latents, passes, cache.encoded_images, unet_calls)
