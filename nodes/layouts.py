"""Layout conversions between ComfyUI types and m3ddm_core, in one place.

IMAGE ``[B, H, W, C]`` float 0..1 (C = 1, 3 or 4); LATENT ``{"samples": [B, 4, h, w]}`` unscaled (as core VAE
nodes use it); m3ddm_core latents are scaled by 0.18215 and pixels are ``[k, H, W, 3]`` float 0..1.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..m3ddm_core import SD_LATENT_SCALE

from .validation import node_error, oom_hint


def rgb_frames(images: torch.Tensor, node: str) -> torch.Tensor:
    """IMAGE -> ``[N, H, W, 3]`` view/copy for the model: grayscale repeated, alpha dropped."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise node_error(node, f"expected an IMAGE batch [frames, height, width, channels], got {shape}")
    if images.shape[0] == 0:
        raise node_error(node, "the IMAGE batch has 0 frames; connect a video or image sequence with at least one "
                               "frame")
    c = images.shape[-1]
    if c == 3:
        return images
    if c == 1:
        return images.expand(-1, -1, -1, 3)
    if c == 4:
        return images[..., :3]
    raise node_error(node, f"IMAGE has {c} channels; expected 1 (grayscale), 3 (RGB) or 4 (RGBA)")


def with_channels(rgb: torch.Tensor, channels: int) -> torch.Tensor:
    """``[N, H, W, 3]`` -> ``channels`` (1: grey, the mean; 4: opaque alpha added; 3: unchanged), to match an IMAGE."""
    if channels == 1:
        return rgb.mean(dim=-1, keepdim=True)
    if channels == 4:
        return torch.cat([rgb, torch.ones_like(rgb[..., :1])], dim=-1)
    return rgb


DECODING_FIX = ("ComfyUI already retried in tiles. Close other workflows or programs that use the GPU, or lower "
                "working_size on M3DDM Outpaint Canvas (the VAE decodes canvases of that size).")


def vae_codec(vae, node: str) -> tuple[Callable, Callable]:
    """A ComfyUI VAE, refused unless it is SD 1.x's (M3DDM works in its latent space: 4 channels, 8x, images), as
    ``(encode, decode)``: pixels ``[k, H, W, 3]`` 0..1 <-> scaled latents ``[k, 4, H/8, W/8]``, on the CPU. Out of
    memory while decoding is named after ``node``, with what to do (not low_vram: that is the UNet's)."""
    channels, ratio = getattr(vae, "latent_channels", None), getattr(vae, "downscale_ratio", 8)
    dim = getattr(vae, "latent_dim", 2)
    if channels != 4 or ratio != 8 or dim != 2:
        raise node_error(node, f"the VAE has {channels} latent channels, downscale {ratio}, latent dim {dim}; M3DDM "
                               "needs the Stable Diffusion 1.x VAE (4 channels, 8x, image). Load e.g. "
                               "vae-ft-mse-840000-ema-pruned.safetensors with the core Load VAE node.")

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return vae.encode(pixels).float().cpu() * SD_LATENT_SCALE

    def decode(latents: torch.Tensor) -> torch.Tensor:
        try:
            return vae.decode(latents / SD_LATENT_SCALE)[..., :3].float().cpu()
        except torch.cuda.OutOfMemoryError as exc:
            raise oom_hint(exc, node, "decoding the canvases with the VAE", DECODING_FIX) from exc
    return encode, decode


def to_latent_dict(latents: torch.Tensor, frames: list[int]) -> dict:
    """Scaled core latents ``[k, 4, h, w]`` of source ``frames`` -> a LATENT (unscaled; core VAE Decode works on
    it). ``m3ddm_frames`` tells a later sampler which source frame each latent belongs to (guides)."""
    return {"samples": latents / SD_LATENT_SCALE, "m3ddm_frames": list(frames)}


def guide_latents(latent: dict, node: str) -> dict[int, torch.Tensor]:
    """A guide LATENT from an M3DDM sampler -> ``{frame index: scaled latent [4, h, w]}`` (:func:`outpaint_clip`
    checks that they fit the canvas and the video)."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise node_error(node, "the guide input is not a LATENT")
    samples = latent["samples"]
    frames = latent.get("m3ddm_frames")
    if frames is None:
        raise node_error(node, "the guide LATENT does not come from an M3DDM sampler (it carries no frame indexes); "
                               "connect the LATENT output of M3DDM Sample Clip or M3DDM Coarse-to-Fine Outpaint")
    if samples.shape[0] != len(frames):
        raise node_error(node, f"guide LATENT holds {samples.shape[0]} latents for {len(frames)} frame indexes")
    return {int(f): samples[i].float().cpu() * SD_LATENT_SCALE for i, f in enumerate(frames)}


