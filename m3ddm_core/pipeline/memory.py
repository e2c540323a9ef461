"""Peak memory of sampling, found without computing anything.

The UNet is built on the ``meta`` device and one guided denoising step runs under a dispatch mode that adds up
the bytes of every tensor storage while it is alive. Attention is modelled as a fused kernel (flash/memory-
efficient SDPA, which is what ComfyUI and PyTorch use on GPUs): only its output is allocated, no
``tokens x tokens`` score matrix. Kernel workspaces (cuDNN) and allocator fragmentation are not tensors and are
not counted; callers add a margin.
"""
from __future__ import annotations

import functools
import json
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .guidance import ClipConditioning, GuidedDenoiser
from .schedule import CLIP_FRAMES, GLOBAL_FRAMES


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of tensor storages created while active and still referenced; ``peak`` is the maximum.

    Storages that existed before (weights, inputs) are not counted; views and in-place results share their
    base's storage and are counted once.
    """

    def __init__(self):
        super().__init__()
        self._live: dict[int, list[int]] = {}  # storage key -> [bytes, tensors referencing it]
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # Aliasing is read from storages, not from op schemas: under inference mode "maybe view" ops (reshape,
        # contiguous, to) arrive undecomposed with a view schema even when they copy.
        inputs = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            key = _storage_key(t)
            if key in self._live:
                self._live[key][1] += 1
            elif key in inputs:  # a view or in-place result of a storage made outside (a weight, an input)
                continue
            else:
                nbytes = t.untyped_storage().nbytes()
                self._live[key] = [nbytes, 1]
                self.current += nbytes
                self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._release, key)
        return out


def fused_attention_memory(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Stand-in kernel with the memory of fused attention: it allocates its output and nothing else."""
    return torch.empty_like(q)


def traced_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of the storages ``fn`` allocates while it runs (run it on ``meta`` tensors to compute nothing)."""
    tracker = LiveTensorBytes()
    with torch.no_grad(), tracker:
        result = fn()
        del result
    return tracker.peak


@dataclass(frozen=True)
class SamplingMemory:
    """Bytes of one guided step: ``weights`` (the UNet), ``activations`` (peak of everything else, including
    the clip's projected global-token K/V); ``total`` is their sum."""

    weights: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.activations


# The guidance pair whose non-zero branch weights give 1, 2 or 3 branches (see guidance.guidance_weights).
GUIDANCE_FOR_BRANCHES = {1: (1.0, 0.0), 2: (1.0, 4.0), 3: (2.0, 4.0)}


def guided_step(model, tensor: Callable[..., torch.Tensor], branches: int = 3, sequential: bool = False,
                frames: int = CLIP_FRAMES, latent_hw: tuple[int, int] = (32, 32), passes: int = 1) -> torch.Tensor:
    """One guided noise prediction as the sampler makes it -- global frames encoded, the clips' conditioning
    prepared, the branches run -- for ``passes`` clips sampled together, on inputs drawn from ``tensor(*shape)``
    (zeros on ``meta`` for a trace, random for a measurement). Returns ``[passes, 4, frames, h, w]``."""
    h, w = latent_hw
    s1, s2 = GUIDANCE_FOR_BRANCHES[branches]
    tokens = model.encode_global(tensor(GLOBAL_FRAMES, 4, h, w))
    conds = [ClipConditioning(masked_latents=tensor(1, 4, frames, h, w), mask=tensor(1, 1, frames, h, w),
                              uncond_latents=tensor(1, 4, frames, h, w), uncond_mask=tensor(1, 1, frames, h, w),
                              global_tokens=tokens, uncond_global_tokens=tokens.clone()) for _ in range(passes)]
    denoiser = GuidedDenoiser(model, conds[0] if passes == 1 else conds, s1, s2, sequential)
    return denoiser(tensor(passes, 4, frames, h, w), 500, 8)


@functools.lru_cache(maxsize=64)
def _sampling_memory(config_json: str, dtype: torch.dtype, branches: int, sequential: bool,
                     frames: int, latent_hw: tuple[int, int], passes: int) -> SamplingMemory:
    from ..model.unet3d import build_unet

    model = build_unet(json.loads(config_json), device="meta", dtype=dtype)
    model.set_attention(fused_attention_memory)
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    meta = functools.partial(torch.zeros, device="meta", dtype=dtype)
    peak = traced_peak_bytes(lambda: guided_step(model, meta, branches, sequential, frames, latent_hw, passes))
    return SamplingMemory(weights=weights, activations=peak)


def sampling_memory(config: Mapping[str, Any], dtype: torch.dtype, branches: int = 3, sequential: bool = False,
                    frames: int = CLIP_FRAMES, latent_hw: tuple[int, int] = (32, 32),
                    passes: int = 1) -> SamplingMemory:
    """Memory of sampling ``passes`` clips together (1: one pass) of ``frames`` latent frames ``latent_hw`` with
    ``branches`` guidance branches (1-3), batched in one UNet call or ``sequential`` (the low-VRAM mode). Cached;
    about a second uncached."""
    if branches not in GUIDANCE_FOR_BRANCHES:
        raise ValueError(f"branches must be 1, 2 or 3, not {branches}")
    if passes < 1:
        raise ValueError(f"passes must be >= 1, not {passes}")
    return _sampling_memory(json.dumps(dict(config), sort_keys=True), dtype, branches, sequential, frames,
                            tuple(latent_hw), int(passes))


# Room for what the trace does not see: convolution workspaces, allocator rounding and fragmentation.
MEMORY_MARGIN = 1.3


def fits_batched(free_bytes: int, batched: SamplingMemory, margin: float = MEMORY_MARGIN) -> bool:
    """Whether the batched branches' activations fit in ``free_bytes`` (weights already loaded)."""
    return batched.activations * margin <= free_bytes
