"""Guidance as the plugin runs it: a clip's conditioning and the guided noise prediction over its branches.

Two kinds of conditioning, never called by the same name: the **masked latents** (VAE latents of the masked
canvases -- the visible video content, the "context" of context guidance s1) enter the UNet's input channels;
the **global tokens** (the global-frame encoder's output for the 16 global frames) enter every cross-attention.

Guidance: ``e = e00 + s1 (e10 - e00) + s2 (e11 - e10)``, e{masked latents}{global tokens}, 1 = conditional.
The official code also evaluates e01 (unconditional latents, conditional tokens) and drops it; here only the
branches with a non-zero coefficient run: e00 has ``1 - s1``, e10 ``s1 - s2``, e11 ``s2`` (3 branches at the
defaults, 1 when s1 = s2 = 1). The official 4-branch call lives in the tests (``tests/reference.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from einops import rearrange, repeat


@dataclass(frozen=True)
class ClipConditioning:
    """Everything a clip is conditioned on, on the model's device. Shapes for F frames of h x w latents:

    masked_latents ``[1,4,F,h,w]``; uncond_latents ``[1,4,F,h,w]`` (the all-black canvas); mask ``[1,1,F,h,w]``
    (1 = generate) and uncond_mask ``[1,1,F,h,w]`` (ones) -- guide frames have their latent in both latent
    tensors and 0 in both masks; global_tokens / uncond_global_tokens ``[1,T,320]`` (the encoder applied to the
    global-frame latents / to all-zero latents).
    """

    masked_latents: torch.Tensor
    uncond_latents: torch.Tensor
    mask: torch.Tensor
    uncond_mask: torch.Tensor
    global_tokens: Optional[torch.Tensor]
    uncond_global_tokens: Optional[torch.Tensor]


def clip_conditioning(masked_latents: torch.Tensor, uncond_latent: torch.Tensor, mask_latent: torch.Tensor,
                      guides: dict[int, torch.Tensor], global_tokens: Optional[torch.Tensor],
                      uncond_global_tokens: Optional[torch.Tensor]) -> ClipConditioning:
    """Assemble a clip's conditioning the official way.

    masked_latents ``[F,4,h,w]``; uncond_latent ``[1,4,h,w]``; mask_latent ``[h,w]`` or ``[F,h,w]`` (1 = generate);
    guides ``{position in clip: [4,h,w]}`` already generated latents that replace both latents of their frame
    (mask 0).
    """
    f = masked_latents.shape[0]
    masked = rearrange(masked_latents, "f c h w -> 1 c f h w").clone()
    uncond = repeat(uncond_latent.reshape(-1, *uncond_latent.shape[-2:]), "c h w -> 1 c f h w", f=f).clone()
    mask = mask_latent.to(masked.dtype).expand(f, *mask_latent.shape[-2:])
    mask = rearrange(mask, "f h w -> 1 1 f h w").clone()
    uncond_mask = torch.ones_like(mask)
    for pos, latent in guides.items():
        if not 0 <= pos < f:
            raise ValueError(f"guide position {pos} is outside the clip of {f} frames")
        masked[0, :, pos] = latent.to(masked)
        uncond[0, :, pos] = latent.to(masked)
        mask[0, :, pos] = 0
        uncond_mask[0, :, pos] = 0
    return ClipConditioning(masked, uncond, mask, uncond_mask, global_tokens, uncond_global_tokens)


def guidance_weights(s1: float, s2: float) -> dict[str, float]:
    """Coefficients of e00, e10, e11 in the combined prediction. They sum to 1, so at least one is non-zero."""
    return {"e00": 1.0 - s1, "e10": s1 - s2, "e11": s2}


def active_branches(s1: float, s2: float) -> dict[str, float]:
    """The branches a step runs (non-zero coefficient) and their weights."""
    return {k: w for k, w in guidance_weights(s1, s2).items() if w != 0.0}


class GuidedDenoiser:
    """The guided noise prediction of one clip or of several batched together, with everything that is constant
    over their steps prepared once: the branch set, the conditioning half of the UNet input, and the global tokens
    with their cross-attention K/V projected (when the model offers ``project_global_tokens``).

    ``cond`` is one :class:`ClipConditioning` or a sequence of them (k clips of the same shape: independent passes
    sampled together, one UNet call carries k x branches samples). ``sequential`` runs one UNet call per branch (the
    low-VRAM mode) instead of one batched call.
    """

    def __init__(self, model, cond: ClipConditioning | Sequence[ClipConditioning], s1: float, s2: float,
                 sequential: bool = False):
        conds = [cond] if isinstance(cond, ClipConditioning) else list(cond)
        if not conds:
            raise ValueError("no clip to denoise")
        weights = active_branches(s1, s2)
        self.model, self.sequential, self.clips = model, sequential, len(conds)
        self.names = list(weights)
        self.weights = [weights[n] for n in self.names]
        dtype = getattr(model, "dtype", conds[0].masked_latents.dtype)

        def parts(c: ClipConditioning, name: str):
            latents, mask, tokens = {"e00": (c.uncond_latents, c.uncond_mask, c.uncond_global_tokens),
                                     "e10": (c.masked_latents, c.mask, c.uncond_global_tokens),
                                     "e11": (c.masked_latents, c.mask, c.global_tokens)}[name]
            return torch.cat([latents, mask], dim=1).to(dtype), tokens

        project = getattr(model, "project_global_tokens", lambda t: t)
        # UNet batch order: clip-major, branch-minor (clip 0's branches, then clip 1's ...); sequential: one call
        # per branch over the clips
        clips = range(len(conds))
        groups = [[(i, n) for i in clips for n in self.names]] if not sequential else \
            [[(i, n) for i in clips] for n in self.names]
        self.cond_in, self.tokens, self.clip_of = [], [], []  # per UNet call; clip_of: each sample's clip
        for group in groups:
            pairs = [parts(conds[i], n) for i, n in group]
            self.cond_in.append(torch.cat([p[0] for p in pairs]))
            self.tokens.append(project(torch.cat([p[1] for p in pairs])))
            self.clip_of.append([i for i, _ in group])

    def __call__(self, x: torch.Tensor, t, fps) -> torch.Tensor:
        """Latents ``[k, 4, F, h, w]`` (k clips) -> combined noise prediction ``[k, 4, F, h, w]``. ``fps``: one
        value for every clip or one per clip."""
        x = x.to(self.cond_in[0].dtype)
        k = self.clips
        if x.shape[0] != k:
            raise ValueError(f"{x.shape[0]} latents for {k} clips")
        several = isinstance(fps, (list, tuple)) or (isinstance(fps, torch.Tensor) and fps.ndim > 0)
        per_clip = [int(f) for f in fps] if several else [fps] * k
        preds: list[list[torch.Tensor]] = [[] for _ in range(k)]  # clip -> its branches' predictions
        for cond_in, tokens, clips in zip(self.cond_in, self.tokens, self.clip_of):
            noisy = x.expand(len(clips), *x.shape[1:]) if k == 1 else x[clips]
            sample = torch.cat([noisy, cond_in], dim=1)
            rates = per_clip[0] if len(set(per_clip)) == 1 else torch.tensor([per_clip[c] for c in clips])
            for c, pred in zip(clips, self.model(sample, t, rates, tokens).split(1)):
                preds[c].append(pred)
        outs = []
        for clip_preds in preds:
            out = clip_preds[0] * self.weights[0]
            for w, pred in zip(self.weights[1:], clip_preds[1:]):
                out = out + pred * w
            outs.append(out)
        return outs[0] if k == 1 else torch.cat(outs)
