"""Load M3DDM UNet weights: Hugging Face folders, single ``.safetensors`` or ``.bin`` files, strictly.

Peak memory stays near one copy of the weights: the model is built on the ``meta`` device and each tensor is
cast and moved on its own, then assigned (no second full-size copy, no fp32 side copy of an fp16 file).
``.bin`` files are read with ``torch.load(weights_only=True)``: no arbitrary object is ever unpickled.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from .attention import AttentionFn, sdpa_attention
from .config import FULL_SIZE_CONFIG, ConfigError, read_config
from .unet3d import M3DDMUNet, build_unet

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}  # the precisions a model loads in
CONFIG_METADATA_KEY = "m3ddm_config"
DOWNLOAD_HINT = ("Download the UNet folder of alimama-creative/M3DDM-Video-Outpainting (or M3DDM+) from Hugging Face: "
                 "'config.json' and 'diffusion_pytorch_model.bin' (or .safetensors)")


class WeightsError(ValueError):
    """A weights path that cannot be loaded as an M3DDM UNet; the message says what is wrong and what to do."""


def identify_foreign(keys) -> Optional[str]:
    """Name the kind of model a state dict belongs to when it is recognisably not an M3DDM UNet."""
    keys = list(keys)
    has = lambda frag: any(frag in k for k in keys)  # noqa: E731
    starts = lambda pre: any(k.startswith(pre) for k in keys)  # noqa: E731
    if starts("model.diffusion_model.") or starts("first_stage_model.") or starts("cond_stage_model."):
        return "a full Stable Diffusion checkpoint (UNet+VAE+text encoder)"
    if has("motion_modules") or has("temporal_transformer.") or starts("down_blocks.0.motion"):
        return "an AnimateDiff motion module"
    if (starts("encoder.") and starts("decoder.")) or starts("quant_conv") or starts("post_quant_conv"):
        return "a VAE"
    if starts("encoder.") or starts("decoder."):
        return "a VAE or autoencoder part"
    if has("temp_convs") or starts("transformer_in."):
        return "a diffusers/ModelScope text-to-video UNet (UNet3DConditionModel of diffusers)"
    if starts("input_blocks.") or starts("output_blocks."):
        return "a Stable Diffusion UNet (original LDM layout)"
    if starts("down_blocks.") and not starts("global_img_encoder.") and not has("transformer_blocks2"):
        return "a Stable Diffusion UNet (diffusers layout)"
    if starts("text_model.") or starts("transformer.text_model"):
        return "a text encoder"
    return None


def resolve_weights(path: str | os.PathLike) -> tuple[Path, dict[str, Any], str]:
    """Find the weights file and its config for a folder or a file.

    Returns ``(weights_file, config_dict, where_the_config_came_from)``. Config priority for a single file:
    config stored in the safetensors metadata, then a sibling ``config.json``, then the full-size default.
    """
    p = Path(path)
    if not p.exists():
        raise WeightsError(f"M3DDM weights not found: '{p}'. Put the model folder (or a single .safetensors/.bin) "
                           f"into ComfyUI's models/m3ddm folder. {DOWNLOAD_HINT}.")
    if p.is_dir():
        weights = next((p / n for n in WEIGHT_NAMES if (p / n).is_file()), None)
        if weights is None:
            # A folder holding the diffusers 'unet' subfolder is a common layout too.
            if (p / "unet").is_dir():
                return resolve_weights(p / "unet")
            found = sorted(x.name for x in p.iterdir())[:10]
            raise WeightsError(f"M3DDM folder '{p}' has no weights file (looked for {', '.join(WEIGHT_NAMES)}; "
                               f"found {found or 'nothing'}). {DOWNLOAD_HINT}.")
        cfg_path = p / "config.json"
        if cfg_path.is_file():
            return weights, _read(cfg_path), str(cfg_path)
        return weights, dict(FULL_SIZE_CONFIG), "the full-size default (no config.json in the folder)"
    if p.suffix.lower() not in WEIGHT_SUFFIXES:
        raise WeightsError(f"'{p}' is not a weights file (expected one of {', '.join(WEIGHT_SUFFIXES)}).")
    if p.suffix.lower() == ".safetensors":
        stored = _safetensors_metadata(p).get(CONFIG_METADATA_KEY)
        if stored:
            try:
                return p, json.loads(stored), f"the metadata of {p.name}"
            except json.JSONDecodeError as exc:
                raise WeightsError(f"'{p}': its stored M3DDM config is not valid JSON ({exc}).") from exc
    sibling = p.parent / "config.json"
    if sibling.is_file():
        return p, _read(sibling), str(sibling)
    return p, dict(FULL_SIZE_CONFIG), "the full-size default"


def _read(cfg_path: Path) -> dict[str, Any]:
    try:
        return read_config(cfg_path)
    except ConfigError as exc:
        raise WeightsError(str(exc)) from exc


def _safetensors_metadata(p: Path) -> dict[str, str]:
    from safetensors import safe_open
    try:
        with safe_open(str(p), framework="pt") as fh:
            return fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error type for every malformed header
        raise WeightsError(f"'{p}' is truncated or corrupt ({type(exc).__name__}: {exc}). Download it again.") from exc


def iter_state_dict(weights: Path, dtype: Optional[torch.dtype] = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(key, tensor)`` from a weights file without materialising a second copy of it.

    ``dtype`` is the dtype the caller will cast floating tensors to. A ``.bin`` already in that dtype stays
    memory-mapped (no copy at all); otherwise it is read once and each tensor is released as soon as it has
    been yielded, so the stored and the cast copies never coexist in full.
    """
    if weights.suffix.lower() == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(weights), framework="pt") as fh:
                for key in fh.keys():
                    yield key, fh.get_tensor(key)
        except WeightsError:
            raise
        except Exception as exc:
            raise WeightsError(f"'{weights}' is truncated or corrupt ({type(exc).__name__}: {exc}). Download it again.") from exc
        return
    sd = _load_pickle(weights, mmap=True)
    if dtype is not None and any(t.is_floating_point() and t.dtype != dtype for t in sd.values()):
        del sd  # a mapped file stays resident while cast copies are made: read it plainly instead
        sd = _load_pickle(weights, mmap=False)
    while sd:
        key = next(iter(sd))
        yield key, sd.pop(key)


def _load_pickle(weights: Path, mmap: bool) -> dict[str, torch.Tensor]:
    try:
        try:
            sd = torch.load(str(weights), map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            sd = torch.load(str(weights), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"'{weights}' was refused: it contains Python objects other than tensors, and loading "
                           "it could run arbitrary code. Nothing was executed. Use the official weights or a "
                           ".safetensors file.") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise WeightsError(f"'{weights}' is truncated or corrupt ({type(exc).__name__}: {exc}). Download it again.") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"'{weights}' does not hold a flat state dict of tensors.")
    return sd


def check_keys(expected: dict[str, torch.Size], found: dict[str, torch.Size], source: str,
               config_source: str = "") -> None:
    """Strict key and shape comparison with an actionable message."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    if not (missing or unexpected or wrong):
        return
    kind = identify_foreign(found)
    if kind:
        raise WeightsError(f"'{source}' is {kind}, not an M3DDM UNet ({len(missing)} M3DDM keys missing, "
                           f"{len(unexpected)} foreign keys). {DOWNLOAD_HINT}.")
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
    if wrong:
        parts.append(f"{len(wrong)} shape mismatches (first: " +
                     ", ".join(f"{k} {tuple(found[k])} vs {tuple(expected[k])}" for k in wrong[:3]) + ")")
    hint = (f" The shapes point at a model size other than the config ({config_source or 'given'}) describes: "
            "put the model's config.json next to the weights." if wrong else "")
    raise WeightsError(f"'{source}' does not match the M3DDM UNet: " + "; ".join(parts) + "." + hint)


def load_unet(path: str | os.PathLike, dtype: torch.dtype = torch.float32, device="cpu", ops=None,
              attention: AttentionFn = sdpa_attention) -> M3DDMUNet:
    """Load an M3DDM UNet (global-frame encoder included) from a folder or a single weights file.

    Floating-point tensors are cast to ``dtype`` and placed on ``device`` one at a time. Any missing,
    unexpected or mis-shaped key is a :class:`WeightsError`.
    """
    weights, cfg, cfg_source = resolve_weights(path)
    try:
        model = build_unet(cfg, device="meta", ops=ops, attention=attention)
    except ConfigError as exc:
        raise WeightsError(f"config from {cfg_source}: {exc}") from exc
    expected = {k: v.shape for k, v in model.state_dict().items()}
    device = torch.device(device)
    sd: dict[str, torch.Tensor] = {}
    for key, tensor in iter_state_dict(weights, dtype):
        if tensor.is_floating_point():
            tensor = tensor.to(dtype=dtype)
        sd[key] = tensor.to(device)
    check_keys(expected, {k: v.shape for k, v in sd.items()}, str(weights), cfg_source)
    model.load_state_dict(sd, strict=True, assign=True)
    return model.eval().requires_grad_(False)  # an inference model: no autograd graph behind any output
