"""Noise schedulers (diffusers) with the Stable Diffusion 1.5 settings M3DDM was trained with."""
from __future__ import annotations

SD15_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}

SCHEDULERS = ("pndm", "ddim", "dpmpp_2m")
DEFAULT_SCHEDULER = "pndm"


def make_scheduler(name: str = DEFAULT_SCHEDULER):
    """A fresh diffusers scheduler. ``pndm`` is the official one (PLMS, ``skip_prk_steps``); ``ddim`` and
    ``dpmpp_2m`` (DPM-Solver++ 2M) give usable results with fewer steps."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler

    if name == "pndm":
        return PNDMScheduler(**SD15_BETAS, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    if name == "ddim":
        return DDIMScheduler(**SD15_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    if name == "dpmpp_2m":
        return DPMSolverMultistepScheduler(**SD15_BETAS, algorithm_type="dpmsolver++", solver_order=2, steps_offset=1)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def sampling_timesteps(scheduler, steps: int):
    """Set ``steps`` and return ``(start_timestep, loop_timesteps)`` the official way.

    The official code noises the start latent at ``timesteps[len - steps]`` and denoises over
    ``timesteps[len - steps:]``. PNDM's PLMS yields ``steps + 1`` timesteps (one repeated), so the first is
    skipped there; other schedulers yield exactly ``steps``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    first = len(timesteps) - steps
    return timesteps[first], timesteps[first:]
