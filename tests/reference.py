"""The official implementation's computation, on this package's model: the one oracle of the parity tests and
the benchmarks' baseline (it lives with the tests: the shipped package does not carry it). The nodes never run
it; they use the faster paths of :mod:`m3ddm_core.pipeline.guidance` and :mod:`m3ddm_core.pipeline.sampler`,
which the tests hold against it.

The official UNet call, with 4 branches ordered e00, e10, e01, e11 (e{masked latents}{global tokens},
1 = conditional), re-runs the global-frame encoder on every call (all-zero latents for the unconditional
tokens) and gives every frame its own copy of its branch's tokens.
"""
from __future__ import annotations

import torch

from m3ddm_core.pipeline.guidance import ClipConditioning
from m3ddm_core.pipeline.schedule import Pass, official_window_schedule as _official_window_schedule

# The global tokens each batch item of an official UNet call gets, for the branch counts it is called with.
BRANCH_GLOBALS = {1: ("cond",), 2: ("uncond", "cond"), 4: ("uncond", "uncond", "cond", "cond")}


def combine(e00: torch.Tensor, e10: torch.Tensor, e11: torch.Tensor, s1: float, s2: float) -> torch.Tensor:
    """``e = e00 + s1 (e10 - e00) + s2 (e11 - e10)`` -- the official guidance formula."""
    return e00 + s1 * (e10 - e00) + s2 * (e11 - e10)


def official_global_tokens(model, global_latents: torch.Tensor, branches: int, frames: int) -> torch.Tensor:
    """Global-frame latents ``[16, 4, h, w]`` -> the official per-frame tokens ``[branches * frames, T, 320]``."""
    if branches not in BRANCH_GLOBALS:
        raise ValueError(f"branches must be 1, 2 or 4, got {branches}")
    zeros = torch.zeros_like(global_latents)
    latents = torch.stack([global_latents if g == "cond" else zeros for g in BRANCH_GLOBALS[branches]])
    return model.encode_global(latents).repeat_interleave(frames, dim=0)


def official_unet_forward(model, sample: torch.Tensor, timestep, fps, global_latents: torch.Tensor,
                          branches: int) -> torch.Tensor:
    """The official ``unet(sample, t, b=1, g=16, f=F, do_classfier=branches, encoder_hidden_states=global_latents)``.

    sample ``[branches, 9, F, h, w]``; global_latents ``[16, 4, h, w]``; returns ``[branches, 4, F, h, w]``.
    """
    with torch.no_grad():
        tokens = official_global_tokens(model, global_latents, branches, sample.shape[2])
        return model(sample, timestep, fps, tokens)


def official_noise_predictions(model, x: torch.Tensor, timestep, fps, cond: ClipConditioning,
                               global_latents: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One official 4-branch step for latents ``x`` ``[1,4,F,h,w]``: ``(e00, e10, e01, e11)`` in float32.
    Only the latents and masks of ``cond`` are used; the tokens come from ``global_latents``."""
    sample = torch.cat([torch.cat([x] * 4), torch.cat([cond.uncond_latents, cond.masked_latents] * 2),
                        torch.cat([cond.uncond_mask, cond.mask] * 2)], dim=1)
    return official_unet_forward(model, sample, timestep, fps, global_latents, 4).float().chunk(4)


def official_sampler_loop(model, start_latents: torch.Tensor, cond: ClipConditioning, global_latents: torch.Tensor,
                          noise: torch.Tensor, steps: int, s1: float, s2: float, fps) -> torch.Tensor:
    """The official denoising loop for one clip: PNDM with the SD1.5 settings, 4 UNet branches per step.

    start_latents ``[1,4,F,h,w]`` (the prefilled canvases, noised at the first timestep); cond from
    :func:`.guidance.clip_conditioning` (guides included; its tokens are ignored); global_latents
    ``[16,4,h,w]``; noise ``[1,4,F,h,w]``. Returns the final latents ``[1,4,F,h,w]``.
    """
    from m3ddm_core.pipeline.noise_schedulers import make_scheduler, sampling_timesteps

    sched = make_scheduler("pndm")
    t_start, timesteps = sampling_timesteps(sched, steps)
    x = sched.add_noise(start_latents.float(), noise.float(), t_start.reshape(1))
    for t in timesteps:
        e00, e10, _e01, e11 = official_noise_predictions(model, sched.scale_model_input(x, t), t, fps, cond,
                                                         global_latents)
        x = sched.step(combine(e00, e10, e11, s1, s2), t, x).prev_sample
    return x


def official_canvas(frame_hw, target_ratio_list) -> dict:
    """The official canvas geometry: ``canvas_hw``, ``content_box_yxhw``, ``mask_sum`` (pixels to generate).
    Unlike the official code, canvases for targets of at most 256 px work (content is scaled up)."""
    from m3ddm_core.pipeline.canvas import plan_canvas

    plan = plan_canvas(tuple(frame_hw), ratio=target_ratio_list, mode="official")
    return {"canvas_hw": list(plan.canvas_hw), "content_box_yxhw": list(plan.content_box),
            "mask_sum": int(plan.pixel_mask().sum())}


def official_window_schedule(num_frames: int) -> list[Pass]:
    """The official coarse-to-fine passes (with ``official_saved_as``)."""
    return _official_window_schedule(num_frames)
