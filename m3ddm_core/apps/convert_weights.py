"""Convert M3DDM UNet weights to a single ``.safetensors`` file (config and model family stored in its metadata).

Usage: ``python -m m3ddm_core.convert_weights <in.bin|in.ckpt|in.safetensors|folder> <out.safetensors>
[--dtype fp16|bf16|fp32] [--family m3ddm|m3ddm_plus]``
The input is validated strictly (same rules as loading) before anything is written. An M3DDM+ training
checkpoint (``last.ckpt``) gives its UNet alone; the family (:func:`~m3ddm_core.model.loader.weights_family`) is stored
so that the converted file is still known as M3DDM+ whatever it is named.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import torch

from ..model.config import ConfigError
from ..model.loader import (CONFIG_METADATA_KEY, DTYPES, FAMILIES, FAMILY_KEY, WeightsError, check_keys, family_of,
                     iter_state_dict, resolve_weights)
from ..model.unet3d import build_unet

log = logging.getLogger("M3DDM")


def convert(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype | None = None,
            family: str | None = None) -> Path:
    """Write ``dst`` (.safetensors) from ``src``; floating tensors cast to ``dtype`` when given.

    ``family`` overrides the detected model family stored in the metadata (for weights whose folder and name
    carry no M3DDM+ marker)."""
    from safetensors.torch import save_file

    dst = Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise WeightsError(f"output '{dst}' must end in .safetensors")
    if family is not None and family not in FAMILIES:
        raise WeightsError(f"family {family!r}: expected one of {', '.join(FAMILIES)}")
    weights, cfg, cfg_source = resolve_weights(src)
    try:
        model = build_unet(cfg, device="meta")
    except ConfigError as exc:
        raise WeightsError(f"config from {cfg_source}: {exc}") from exc
    sd = {}
    for key, tensor in iter_state_dict(weights):
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        sd[key] = tensor.contiguous()
    check_keys({k: v.shape for k, v in model.state_dict().items()}, {k: v.shape for k, v in sd.items()}, str(weights),
               cfg_source)
    ordered = {k: sd[k] for k in model.state_dict()}
    detected, why = family_of(Path(src), weights, cfg, cfg_source)
    family = family or detected
    log.info("M3DDM: '%s' is %s (%s)", weights.name, family, why if family == detected else "as given")
    if FAMILY_KEY in cfg:  # the stored config must not contradict the stored family
        cfg = dict(cfg, **{FAMILY_KEY: family})
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    save_file(ordered, str(tmp), metadata={"format": "pt", CONFIG_METADATA_KEY: json.dumps(cfg), FAMILY_KEY: family})
    os.replace(tmp, dst)  # never leave a half-written file under the final name
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m m3ddm_core.convert_weights", description=__doc__.splitlines()[0])
    ap.add_argument("src", help="official .bin, an M3DDM+ training .ckpt, a .safetensors, or a Hugging Face-style "
                                "folder")
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="cast floating tensors (default: keep)")
    ap.add_argument("--family", choices=FAMILIES, default=None,
                    help="model family to store (default: detected from markers, checkpoint layout and names)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # what was ignored or detected is worth seeing
    try:
        out = convert(args.src, args.dst, DTYPES.get(args.dtype) if args.dtype else None, args.family)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
