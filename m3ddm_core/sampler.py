"""Denoise one 16-frame clip: a pure function over tensors, with a per-step callback and interrupt check.

Guidance: ``e = e00 + s1 (e10 - e00) + s2 (e11 - e10)`` where e{context}{global} (1 = conditional). The
official code also evaluates e01 (uncond context, cond global) and drops it; here only the branches with a
non-zero coefficient run: e00 has ``1 - s1``, e10 ``s1 - s2``, e11 ``s2`` (3 branches at the defaults, 1 when
s1 = s2 = 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .schedulers import make_scheduler, sampling_timesteps

StepCallback = Callable[[dict], None]


@dataclass(frozen=True)
class ClipConditioning:
    """Everything a clip is conditioned on, on the model's device. Shapes for F frames of h x w latents:

    context ``[1,4,F,h,w]`` masked-canvas latents; uncond ``[1,4,F,h,w]`` latents of the all-black canvas;
    mask ``[1,1,F,h,w]`` (1 = generate) and uncond_mask ``[1,1,F,h,w]`` (ones) -- guide frames have their latent
    in both context and uncond and 0 in both masks; global_cond / global_uncond ``[1,T,320]`` context tokens.
    """

    context: torch.Tensor
    uncond: torch.Tensor
    mask: torch.Tensor
    uncond_mask: torch.Tensor
    global_cond: torch.Tensor
    global_uncond: torch.Tensor


def clip_conditioning(masked_latents: torch.Tensor, uncond_latent: torch.Tensor, mask_latent: torch.Tensor,
                      guides: dict[int, torch.Tensor], global_cond: torch.Tensor,
                      global_uncond: torch.Tensor) -> ClipConditioning:
    """Assemble a clip's conditioning the official way.

    masked_latents ``[F,4,h,w]``; uncond_latent ``[1,4,h,w]``; mask_latent ``[h,w]`` or ``[F,h,w]`` (1 = generate);
    guides ``{frame: [4,h,w]}`` already generated latents that replace context and uncond of their frame (mask 0).
    """
    f = masked_latents.shape[0]
    context = masked_latents.permute(1, 0, 2, 3).unsqueeze(0).clone()
    uncond = uncond_latent.reshape(1, -1, 1, *uncond_latent.shape[-2:]).expand(-1, -1, f, -1, -1).clone()
    mask = mask_latent.to(context.dtype).expand(f, *mask_latent.shape[-2:]).reshape(1, 1, f, *mask_latent.shape[-2:]).clone()
    uncond_mask = torch.ones_like(mask)
    for idx, latent in guides.items():
        if not 0 <= idx < f:
            raise ValueError(f"guide frame index {idx} is outside the clip of {f} frames")
        context[0, :, idx] = latent.to(context)
        uncond[0, :, idx] = latent.to(context)
        mask[0, :, idx] = 0
        uncond_mask[0, :, idx] = 0
    return ClipConditioning(context, uncond, mask, uncond_mask, global_cond, global_uncond)


def guidance_weights(s1: float, s2: float) -> dict[str, float]:
    """Coefficients of e00, e10, e11 in the combined prediction (branches with weight 0 are skipped)."""
    return {"e00": 1.0 - s1, "e10": s1 - s2, "e11": s2}


def active_branches(s1: float, s2: float) -> dict[str, float]:
    """The branches a step runs (non-zero coefficient) and their weights; at least one."""
    weights = {k: w for k, w in guidance_weights(s1, s2).items() if w != 0.0}
    return weights or {"e10": 1.0}  # s2 = 0 and s1 = s2: the formula degenerates to e10 alone


class GuidedDenoiser:
    """The guided noise prediction of one clip, with everything that is constant over its steps prepared once:
    the branch set, the conditioning half of the UNet input, and the global context with its cross-attention K/V
    projected (when the model offers ``project_context``).

    ``sequential`` runs one UNet call per branch (the low-VRAM mode) instead of one batched call.
    """

    def __init__(self, model, cond: ClipConditioning, s1: float, s2: float, sequential: bool = False):
        weights = active_branches(s1, s2)
        parts = {
            "e00": (cond.uncond, cond.uncond_mask, cond.global_uncond),
            "e10": (cond.context, cond.mask, cond.global_uncond),
            "e11": (cond.context, cond.mask, cond.global_cond),
        }
        self.model, self.sequential = model, sequential
        self.names = list(weights)
        self.weights = [weights[n] for n in self.names]
        dtype = getattr(model, "dtype", cond.context.dtype)
        cond_in = [torch.cat([parts[n][0], parts[n][1]], dim=1).to(dtype) for n in self.names]
        contexts = [parts[n][2] for n in self.names]
        project = getattr(model, "project_context", lambda c: c)
        if sequential:
            self.cond_in = cond_in
            self.contexts = [project(c) for c in contexts]
        else:
            self.cond_in = [torch.cat(cond_in)]
            self.contexts = [project(torch.cat(contexts))]

    def __call__(self, x: torch.Tensor, t, fps) -> torch.Tensor:
        """Latents ``[1, 4, F, h, w]`` -> combined noise prediction ``[1, 4, F, h, w]``."""
        x = x.to(self.cond_in[0].dtype)
        preds = []
        for cond_in, context in zip(self.cond_in, self.contexts):
            k = cond_in.shape[0]
            preds.extend(self.model(torch.cat([x.expand(k, -1, -1, -1, -1), cond_in], dim=1), t, fps, context).split(1))
        out = preds[0] * self.weights[0]
        for w, pred in zip(self.weights[1:], preds[1:]):
            out = out + pred * w
        return out


def predict_noise(model, x: torch.Tensor, t, fps, cond: ClipConditioning, s1: float, s2: float,
                  sequential: bool = False) -> torch.Tensor:
    """One guided noise prediction for latents ``x`` ``[1,4,F,h,w]`` (see :class:`GuidedDenoiser`)."""
    return GuidedDenoiser(model, cond, s1, s2, sequential)(x, t, fps)


def sample_clip(model, start_latents: torch.Tensor, cond: ClipConditioning, noise: torch.Tensor, fps: int,
                steps: int = 50, s1: float = 2.0, s2: float = 4.0, scheduler: str = "pndm",
                callback: Optional[StepCallback] = None, check_interrupt: Optional[Callable[[], None]] = None,
                sequential: bool = False) -> torch.Tensor:
    """Denoise one clip; returns the final latents ``[1,4,F,h,w]`` (scaled, ready to decode).

    start_latents: latents of the prefilled canvas ``[1,4,F,h,w]``, noised at the first timestep.
    noise: ``[1,4,F,h,w]`` (draw it from a CPU generator for device-independent seeds).
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
