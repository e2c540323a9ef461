"""One sampling pass over an encoded shot: the pass runner every front-end and executor uses.

:func:`prepare_shot` turns a shot of an :class:`.encode.EncodedVideo` into what its passes share (global tokens on
the model's device); :func:`run_pass` samples one 16-frame clip of it -- a hand-picked one (M3DDM Sample Clip) and
each pass of a :class:`.plan.VideoPlan` (:mod:`.executors`) alike. ``decode(latents) -> pixels [k, ch, cw, 3] float
0..1`` is a callable, so this module stays free of any VAE implementation.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

from .canvas import CanvasPlan
from .encode import EncodedVideo
from .guidance import clip_conditioning
from .plan import VideoPlan
from .resume import model_fingerprint, run_key
from .sampler import sample_clip
from .schedule import CLIP_FRAMES, Pass
from .seeds import NOISE, derive_seed
from .shots import shot_bounds

DecodeFn = Callable[[torch.Tensor], torch.Tensor]


# Settings that change how the work is batched, not what is computed: left out of the resume key.
EXECUTION_ONLY = ("passes_per_call",)


@dataclass(frozen=True)
class SampleSettings:
    steps: int = 50
    s1: float = 2.0  # context guidance: by the masked latents (the visible video)
    s2: float = 4.0  # global guidance: by the global tokens
    scheduler: str = "pndm"
    sequential: bool = False  # low-VRAM: one UNet call per guidance branch
    passes_per_call: int = 1  # independent passes of a video sampled together, k x branches per UNet call

    @classmethod
    def of(cls, scheduler: str, steps: int, context_guidance: float, global_guidance: float,
           low_vram: bool) -> "SampleSettings":
        """The settings a user gives, as :data:`.parameters.PARAMETERS` names them (a node's widgets, the batch
        command's flags)."""
        return cls(steps=steps, s1=context_guidance, s2=global_guidance, scheduler=scheduler, sequential=low_vram)


def window_noise(noise_seed: int, shape: Sequence[int]) -> torch.Tensor:
    """A pass's noise from a CPU generator: the same seed gives the same video on any device."""
    gen = torch.Generator(device="cpu").manual_seed(int(noise_seed))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32)


def latent_mask(plan: CanvasPlan) -> torch.Tensor:
    """The pixel mask nearest-resized to the latent grid ``[h, w]`` (1 = generate), as the official code does."""
    pix = torch.from_numpy(plan.pixel_mask())[None, None]
    return F.interpolate(pix, size=plan.latent_hw)[0, 0]


@dataclass(frozen=True)
class PreparedShot:
    """What every sampling pass of one shot shares: its canvas latents (views of the video's), the unconditional
    latent, the latent mask, and the global tokens (conditional and unconditional) on the model's device."""

    prefilled: torch.Tensor  # [n, 4, h, w], frames numbered within the shot
    masked: torch.Tensor
    uncond: torch.Tensor  # [1, 4, h, w]
    mask: torch.Tensor  # [h, w], 1 = generate
    global_tokens: torch.Tensor
    uncond_global_tokens: torch.Tensor


def prepare_shot(model, encoded: EncodedVideo, shot: int = 0) -> PreparedShot:
    """Shot ``shot`` of ``encoded`` ready to sample: its global tokens computed once on the model's device."""
    start, end = shot_bounds(encoded.num_frames, encoded.cuts)[shot]
    device, dtype = model.device, model.dtype
    global_latents = encoded.global_latents[shot]
    with torch.no_grad():
        tokens = model.encode_global(global_latents.to(device, dtype))
        uncond_tokens = model.encode_global(torch.zeros_like(global_latents).to(device, dtype))
    return PreparedShot(encoded.prefilled[start:end], encoded.masked[start:end], encoded.uncond,
                        latent_mask(encoded.plan), tokens, uncond_tokens)


@dataclass(frozen=True)
class PassJob:
    """One pass to sample: its prepared shot, its clip (frames numbered within the shot), the guide latents it
    needs (frame -> ``[4, h, w]``; more frames are fine), and the seed of its noise
    (:attr:`.plan.PlannedPass.noise_seed`)."""

    shot: PreparedShot
    clip: Pass
    guides: Mapping[int, torch.Tensor]
    noise_seed: int


def _pass_inputs(model, job: PassJob):
    """``(start latents [1,4,F,h,w], conditioning, noise [1,4,F,h,w])`` of one pass on the model's device."""
    p, shot, guides = job.clip, job.shot, job.guides
    missing = [f for f in p.guide_frames if f not in guides]
    if missing:
        raise ValueError(f"guide frames {missing[:8]} of this pass have no latent")
    device = model.device
    masked = torch.stack([guides[f] if g else shot.masked[f] for f, g in zip(p.frames, p.is_guide)])
    pos_guides = {pos: guides[f].to(device) for pos, (f, g) in enumerate(zip(p.frames, p.is_guide)) if g}
    cond = clip_conditioning(masked.to(device), shot.uncond.to(device), shot.mask.to(device), pos_guides,
                             shot.global_tokens, shot.uncond_global_tokens)
    start = rearrange(torch.stack([shot.prefilled[f] for f in p.frames]), "f c h w -> 1 c f h w").to(device)
    h, w = shot.mask.shape
    noise = window_noise(job.noise_seed, (1, 4, len(p.frames), h, w)).to(device)
    return start, cond, noise


def run_pass_batch(model, jobs: Sequence[PassJob], fps: float, settings: SampleSettings,
                   callback: Optional[Callable[[dict], None]] = None,
                   check_interrupt: Optional[Callable[[], None]] = None) -> list[dict[int, torch.Tensor]]:
    """Sample k independent passes of the same frame count together: every step is one UNet call over the k
    clips' branches (``settings.sequential``: one per branch). Each pass gets what :func:`run_pass` gives it alone
    -- its own noise, guides, conditioning and fps ``fps // stride`` -- so the results match one after another up
    to float rounding of the bigger batch.

    Returns, per job, the latent ``[4, h, w]`` (CPU, float32) of each distinct frame of its pass, in clip order.
    ``callback`` gets the sampler's step info once per job, with that job's ``x``/``denoised`` (``[1,4,F,h,w]``),
    ``"frames"`` and ``"job"`` (its position in ``jobs``)."""
    if not jobs:
        return []
    if len({len(j.clip.frames) for j in jobs}) > 1:
        raise ValueError("passes sampled together need the same number of frames")
    inputs = [_pass_inputs(model, j) for j in jobs]
    k = len(jobs)
    start = inputs[0][0] if k == 1 else torch.cat([i[0] for i in inputs])
    noise = inputs[0][2] if k == 1 else torch.cat([i[2] for i in inputs])
    conds = inputs[0][1] if k == 1 else [i[1] for i in inputs]
    rates = [j.clip.fps(fps) for j in jobs]

    def step_cb(info: dict) -> None:
        for n, j in enumerate(jobs):
            one = info if k == 1 else dict(info, x=info["x"][n:n + 1], denoised=info["denoised"][n:n + 1])
            callback(dict(one, frames=list(j.clip.frames), job=n))

    latents = sample_clip(model, start, conds, noise, rates[0] if k == 1 else rates, settings.steps, settings.s1,
                          settings.s2, settings.scheduler, None if callback is None else step_cb, check_interrupt,
                          settings.sequential)
    out = []
    for n, j in enumerate(jobs):
        written = {frame: latents[n, :, pos].float().cpu() for pos, frame in j.clip.writes}
        out.append({f: written[f] if f in written else j.guides[f].float().cpu() for f in j.clip.distinct_frames})
    return out


def run_pass(model, shot: PreparedShot, p: Pass, guides: Mapping[int, torch.Tensor], fps: float,
             settings: SampleSettings, seed: int, noise_index: int = 0,
             callback: Optional[Callable[[dict], None]] = None,
             check_interrupt: Optional[Callable[[], None]] = None) -> dict[int, torch.Tensor]:
    """Sample one pass (frames numbered within the shot) and return the latent ``[4, h, w]`` (CPU, float32) of each
    of its distinct frames, in clip order: the pass's result at the positions of ``p.writes``, the given latent for
    its guide frames.

    ``guides`` maps frame index -> already generated latent (it may hold more frames than the pass uses; every
    guide frame of ``p`` must be in it). The model is conditioned on ``fps // p.stride``; the noise is that of pass
    ``noise_index`` of a shot with seed ``seed`` (as :class:`.plan.PlannedPass` derives it). ``callback`` gets the
    sampler's step info plus ``"frames"``.
    """
    job = PassJob(shot, p, guides, derive_seed(seed, NOISE, noise_index))
    return run_pass_batch(model, [job], fps, settings, callback, check_interrupt)[0]


def resume_key(content: str, encoded: EncodedVideo, model, settings: SampleSettings, fps: float,
               plan: VideoPlan) -> str:
    """The :class:`.resume.PassStore` key of a video run: the frames' ``content`` identity, the canvas plan, the
    VAE's latents of every shot's global frames and of the unconditional canvas, the weights, the settings, fps,
    and the video plan -- every pass's frames, guides and noise seed, so shots, schedule, strides and seeds (a
    re-rolled shot's too) all count. ``sequential`` is left out: it changes how the branches are batched, not what
    they compute; nor is ``passes_per_call``."""
    settings = {k: v for k, v in dataclasses.asdict(dataclasses.replace(settings, sequential=False)).items()
                if k not in EXECUTION_ONLY}
    globals_ = encoded.global_latents[0] if len(encoded.global_latents) == 1 else torch.cat(encoded.global_latents)
    return run_key(content=content, plan=encoded.plan, global_latents=globals_, uncond_latent=encoded.uncond,
                   model=model_fingerprint(model), settings=settings,
                   fps=float(fps), cuts=[int(c) for c in plan.cuts],
                   passes=[(p.shot_start, p.clip, p.noise_seed) for p in plan.passes])


def decode_latents(decode: DecodeFn, latents: torch.Tensor, batch: int = CLIP_FRAMES) -> torch.Tensor:
    """``[N, 4, h, w]`` scaled latents -> ``[N, ch, cw, 3]`` float 0..1, decoded in batches."""
    with torch.no_grad():
        out = [decode(latents[i:i + batch]).float().cpu() for i in range(0, latents.shape[0], batch)]
    return torch.cat(out).clamp(0, 1)
