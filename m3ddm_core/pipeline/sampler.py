"""Denoise 16-frame clips -- one, or k independent ones batched into the same UNet calls: a pure function over
tensors, with a per-step callback and interrupt check.

The guided noise prediction it steps with is :class:`.guidance.GuidedDenoiser`.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch

from .guidance import ClipConditioning, GuidedDenoiser
from .noise_schedulers import make_scheduler, sampling_timesteps

StepCallback = Callable[[dict], None]


def sample_clip(model, start_latents: torch.Tensor, cond: Union[ClipConditioning, Sequence[ClipConditioning]],
                noise: torch.Tensor, fps: Union[int, Sequence[int]],
                steps: int = 50, s1: float = 2.0, s2: float = 4.0, scheduler: str = "pndm",
                callback: Optional[StepCallback] = None, check_interrupt: Optional[Callable[[], None]] = None,
                sequential: bool = False) -> torch.Tensor:
    """Denoise one clip, or k clips together; returns the final latents ``[k,4,F,h,w]`` (scaled, ready to decode).

    start_latents: latents of the prefilled canvases ``[k,4,F,h,w]``, noised at the first timestep.
    cond: the clip's conditioning, or a sequence of k (one per clip); fps: one rate, or one per clip.
    noise: ``[k,4,F,h,w]`` (draw it from a CPU generator for device-independent seeds).
    Every clip takes the same timesteps; the scheduler's update is elementwise, so k clips step as k would alone.
    callback receives ``{"i", "total", "t", "x", "denoised"}`` after every step; check_interrupt is called
    before every step and may raise to abort (nothing is kept: all state is local).
    """
    sched = make_scheduler(scheduler)
    t_start, timesteps = sampling_timesteps(sched, steps)
    x = sched.add_noise(start_latents.float(), noise.float().to(start_latents.device), t_start.reshape(1))
    alphas = sched.alphas_cumprod
    with torch.no_grad():
        denoiser = GuidedDenoiser(model, cond, s1, s2, sequential)
        for i, t in enumerate(timesteps):
            if check_interrupt is not None:
                check_interrupt()
            model_in = sched.scale_model_input(x, t)
            eps = denoiser(model_in, t, fps).float()
            x = sched.step(eps, t, x).prev_sample
            if callback is not None:
                a = alphas[int(t)].to(x.device)
                denoised = (model_in - (1 - a).sqrt() * eps) / a.sqrt()
                callback({"i": i, "total": len(timesteps), "t": int(t), "x": x, "denoised": denoised})
    return x
