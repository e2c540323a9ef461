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
