"""The official call semantics, for parity tests and outside checks.

These functions reproduce the official implementation's behaviour (including its quirks) on top of this
package's model; the plugin itself uses the faster paths in the other modules.
"""
from __future__ import annotations

import torch

from .guidance import branch_context


def official_unet_forward(model, sample: torch.Tensor, timestep, fps, global_latents: torch.Tensor,
                          branches: int) -> torch.Tensor:
    """The official ``unet(sample, t, b=1, g=16, f=F, do_classfier=branches, encoder_hidden_states=global_latents)``.

    sample ``[branches, 9, F, h, w]``; global_latents the raw ``[16, 4, 32, 32]`` latents; returns
    ``[branches, 4, F, h, w]``. The unconditional global context is the encoder applied to all-zero latents.
    """
    with torch.no_grad():
        cond = model.encode_global(global_latents)
        uncond = model.encode_global(torch.zeros_like(global_latents)) if branches > 1 else cond
        return model(sample, timestep, fps, branch_context(cond, uncond, branches))


def official_sampler_loop(model, ori_latents: torch.Tensor, masked_latents: torch.Tensor, uncond_latent: torch.Tensor,
                          global_latents: torch.Tensor, mask_pixels: torch.Tensor, guides: dict, noise: torch.Tensor,
                          steps: int, s1: float, s2: float, fps) -> torch.Tensor:
    """The official denoising loop for one clip, 4 UNet branches per step, PNDM with SD1.5 settings.

    ori_latents / masked_latents ``[F,4,h,w]``; uncond_latent ``[1,4,h,w]``; global_latents ``[16,4,32,32]``;
    mask_pixels ``[1,1,H,W]`` (1 = generate), nearest-resized to the latent size; guides ``{frame: [4,h,w]}``;
    noise ``[1,4,F,h,w]``. Returns the final latents ``[1,4,F,h,w]``.
    """
    import torch.nn.functional as F

    from .guidance import combine
    from .sampler import clip_conditioning
    from .schedulers import make_scheduler, sampling_timesteps

    h, w = ori_latents.shape[-2:]
    mask = F.interpolate(mask_pixels.float(), size=(h, w))[0, 0]
    with torch.no_grad():
        g_cond = model.encode_global(global_latents)
        g_uncond = model.encode_global(torch.zeros_like(global_latents))
    cond = clip_conditioning(masked_latents, uncond_latent, mask, guides, g_cond, g_uncond)
    sched = make_scheduler("pndm")
    t_start, timesteps = sampling_timesteps(sched, steps)
    start = ori_latents.permute(1, 0, 2, 3).unsqueeze(0)
    x = sched.add_noise(start, noise, t_start.reshape(1))
    latents_cond = torch.cat([cond.uncond, cond.context] * 2)
    masks = torch.cat([cond.uncond_mask, cond.mask] * 2)
    contexts = branch_context(g_cond, g_uncond, 4)
    with torch.no_grad():
        for t in timesteps:
            model_in = sched.scale_model_input(torch.cat([torch.cat([x] * 4), latents_cond, masks], dim=1), t)
            e00, e10, _e01, e11 = model(model_in, t, fps, contexts).chunk(4)
            x = sched.step(combine(e00, e10, e11, s1, s2), t, x).prev_sample
    return x


def official_canvas(frame_hw, target_ratio_list) -> dict:
    """The official canvas geometry: ``canvas_hw``, ``content_box_yxhw``, ``mask_sum`` (pixels to generate).
    Unlike the official code, canvases for targets of at most 256 px work (content is scaled up)."""
    from .canvas import plan_canvas

    plan = plan_canvas(tuple(frame_hw), ratio=target_ratio_list, mode="official")
    return {"canvas_hw": list(plan.canvas_hw), "content_box_yxhw": list(plan.content_box),
            "mask_sum": int(plan.pixel_mask().sum())}


def official_window_schedule(num_frames: int) -> list[dict]:
    """The official coarse-to-fine passes (keys ``stride``, ``frames``, ``is_guide``, plus ``saved_as``)."""
    from .schedule import official_window_schedule as schedule

    return schedule(num_frames)
