"""Load M3DDM UNet weights: Hugging Face folders, single ``.safetensors`` or ``.bin`` files and M3DDM+
PyTorch-Lightning training checkpoints (``.ckpt``), strictly.

Peak memory stays near one copy of the weights: the model is built on the ``meta`` device and each tensor is
cast and moved on its own, then assigned (no second full-size copy, no fp32 side copy of an fp16 file).
``.bin``/``.ckpt`` files are read with ``torch.load(weights_only=True)``: no arbitrary object is ever unpickled.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import torch

from .attention import AttentionFn, sdpa_attention
from .config import FULL_SIZE_CONFIG, ConfigError, read_config
from .unet3d import M3DDMUNet, build_unet

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}  # the precisions a model loads in
CONFIG_METADATA_KEY = "m3ddm_config"
# M3DDM+ training (LitM3DDM, whose ``self.model`` holds ``vae`` and ``unet``) saves the UNet under this prefix.
LIGHTNING_UNET_PREFIX = "model.unet."
CHECKPOINT_SUFFIX = ".ckpt"
FAMILIES = ("m3ddm", "m3ddm_plus")
FAMILY_KEY = "m3ddm_family"  # in a config.json or in the metadata of a converted .safetensors
_PLUS_NAME = re.compile(r"plus|m3ddm\s*\+", re.IGNORECASE)
DOWNLOAD_HINT = ("Download the UNet folder of alimama-creative/M3DDM-Video-Outpainting (or M3DDM+) from Hugging Face: "
                 "'config.json' and 'diffusion_pytorch_model.bin' (or .safetensors)")


log = logging.getLogger("M3DDM")


class WeightsError(ValueError):
    """A weights path that cannot be loaded as an M3DDM UNet; the message says what is wrong and what to do."""


def identify_foreign(keys) -> Optional[str]:
    """Name the kind of model a state dict belongs to when it is recognisably not an M3DDM UNet."""
    keys = list(keys)
    has = lambda frag: any(frag in k for k in keys)  # noqa: E731
    starts = lambda pre: any(k.startswith(pre) for k in keys)  # noqa: E731
    if starts("model.diffusion_model.") or starts("first_stage_model.") or starts("cond_stage_model."):
        return "a full Stable Diffusion checkpoint (UNet+VAE+text encoder)"
    if starts("model.") and not starts(LIGHTNING_UNET_PREFIX):
        held = ", ".join(sorted({_submodule(k) for k in keys})[:5])
        return f"a training checkpoint without a UNet (it holds {held}; no {LIGHTNING_UNET_PREFIX}* keys)"
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

    Returns ``(weights_file, config_dict, where_the_config_came_from)``. A folder's weights are, in this order:
    a standard ``diffusion_pytorch_model.*`` file, the diffusers ``unet/`` subfolder, a Lightning checkpoint
    (``*.ckpt``, as M3DDM+ training leaves them; see :func:`pick_checkpoint`). Config priority for a single
    file: config stored in the safetensors metadata, then a sibling ``config.json``, then the full-size default.
    """
    p = Path(path)
    if not p.exists():
        raise WeightsError(f"M3DDM weights not found: '{p}'. Put the model folder (or a single .safetensors/.bin/"
                           f".ckpt) into ComfyUI's models/m3ddm folder. {DOWNLOAD_HINT}.")
    if p.is_dir():
        weights = next((p / n for n in WEIGHT_NAMES if (p / n).is_file()), None)
        if weights is None:
            # A folder holding the diffusers 'unet' subfolder is a common layout too.
            if (p / "unet").is_dir():
                return resolve_weights(p / "unet")
            weights = pick_checkpoint(p)
        if weights is None:
            found = sorted(x.name for x in p.iterdir())[:10]
            raise WeightsError(f"M3DDM folder '{p}' has no weights file (looked for {', '.join(WEIGHT_NAMES)}, a "
                               f"unet/ subfolder and *{CHECKPOINT_SUFFIX}; found {found or 'nothing'}). "
                               f"{DOWNLOAD_HINT}.")
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


def pick_checkpoint(folder: Path) -> Optional[Path]:
    """The Lightning checkpoint a folder stands for, or None when it holds no ``*.ckpt``.

    Training keeps ``last.ckpt`` (the latest state) beside ``epoch=N-step=M.ckpt`` snapshots: ``last.ckpt`` wins;
    without it, the highest ``step=`` (then ``epoch=``) in the name, then the newest file. The choice is logged
    when there was one to make, since the folder name alone does not say which snapshot was loaded.
    """
    ckpts = sorted(x for x in folder.iterdir() if x.is_file() and x.suffix.lower() == CHECKPOINT_SUFFIX)
    if len(ckpts) <= 1:
        return ckpts[0] if ckpts else None
    last = next((x for x in ckpts if x.name.lower() == "last" + CHECKPOINT_SUFFIX), None)
    chosen = last or max(ckpts, key=_checkpoint_rank)
    why = "training's latest state" if last else "the highest step in its name, then the newest"
    log.info("M3DDM: '%s' holds %d checkpoints (%s); using %s (%s)", folder, len(ckpts),
             ", ".join(x.name for x in ckpts[:6]) + (", ..." if len(ckpts) > 6 else ""), chosen.name, why)
    return chosen


def _checkpoint_rank(p: Path) -> tuple[int, int, float, str]:
    # Name numbers first: copying or downloading a folder can reorder modification times.
    return _name_number(p.name, "step"), _name_number(p.name, "epoch"), p.stat().st_mtime, p.name


def _name_number(name: str, tag: str) -> int:
    """N of ``tag=N`` in a Lightning checkpoint name (``epoch=3-step=1000.ckpt``), -1 when absent."""
    m = re.search(rf"{tag}=(\d+)", name)
    return int(m.group(1)) if m else -1


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
    """Yield the UNet's ``(key, tensor)`` pairs from a weights file without materialising a second copy of it.

    ``dtype`` is the dtype the caller will cast floating tensors to. A ``.bin`` already in that dtype stays
    memory-mapped (no copy at all); otherwise it is read once and each tensor is released as soon as it has
    been yielded, so the stored and the cast copies never coexist in full. A training checkpoint
    (``model.unet.*`` keys) yields its UNet with the prefix stripped and skips everything else (logged).
    """
    if weights.suffix.lower() == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(weights), framework="pt") as fh:
                for stored, key in unet_keys(list(fh.keys()), weights):
                    yield key, fh.get_tensor(stored)
        except WeightsError:
            raise
        except Exception as exc:
            raise WeightsError(f"'{weights}' is truncated or corrupt ({type(exc).__name__}: {exc}). Download it again.") from exc
        return
    sd = _load_pickle(weights, mmap=True)
    _drop_meta(sd, weights)
    pairs = unet_keys(list(sd), weights)
    if any(stored != key for stored, key in pairs):
        # A training checkpoint stays mapped whatever the dtype: only its UNet pages are ever read, while reading
        # it plainly would bring its VAE and optimizer states (several times the UNet) into memory.
        keep = {stored for stored, _ in pairs}
        for k in [k for k in sd if k not in keep]:
            del sd[k]
    elif dtype is not None and any(t.is_floating_point() and t.dtype != dtype for t in sd.values()):
        del sd  # a mapped file stays resident while cast copies are made: read it plainly instead
        sd = _load_pickle(weights, mmap=False)
    for stored, key in pairs:
        yield key, sd.pop(stored)


def unet_keys(keys: Iterable[str], source: Path) -> list[tuple[str, str]]:
    """``(stored key, UNet key)`` for every key of a weights file that belongs to the UNet.

    A plain UNet file maps every key to itself (the strict check judges them). An M3DDM+ training checkpoint
    keeps only its ``model.unet.*`` keys, prefix stripped; its other submodules (the SD VAE ``model.vae``, ...)
    are not part of the UNet: they are skipped and named in the log, so a user sees what was left out.
    """
    keys = list(keys)
    if not any(k.startswith(LIGHTNING_UNET_PREFIX) for k in keys):
        return [(k, k) for k in keys]
    cut = len(LIGHTNING_UNET_PREFIX)
    pairs = [(k, k[cut:]) for k in keys if k.startswith(LIGHTNING_UNET_PREFIX)]
    ignored = Counter(_submodule(k) for k in keys if not k.startswith(LIGHTNING_UNET_PREFIX))
    report = ", ".join(f"{n} keys of {module}" for module, n in sorted(ignored.items()))
    log.info("M3DDM: '%s' is a training checkpoint: loading its %d %s* keys as the UNet%s", source.name,
             len(pairs), LIGHTNING_UNET_PREFIX, f"; ignored {report} (not part of the UNet)" if ignored else "")
    return pairs


def _submodule(key: str) -> str:
    """The module a key belongs to: ``model.vae`` for a Lightning ``model.vae.*`` key, else its first part."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] == "model" and len(parts) > 2 else parts[0]


def _drop_meta(sd: dict[str, torch.Tensor], weights: Path) -> None:
    # Tensors saved from the meta device hold no data (the authors' converter drops them too); a UNet key
    # among them then shows up as missing in the strict check rather than as an opaque copy error.
    meta = [k for k, t in sd.items() if t.is_meta]
    for k in meta:
        del sd[k]
    if meta:
        log.warning("M3DDM: '%s': skipped %d tensors without data (meta device), first: %s", weights.name,
                    len(meta), ", ".join(meta[:3]))


def _load_pickle(weights: Path, mmap: bool) -> dict[str, torch.Tensor]:
    try:
        try:
            sd = torch.load(str(weights), map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            sd = torch.load(str(weights), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as exc:
        hint = (" A training checkpoint whose hyper-parameters or callbacks hold such objects can be converted, "
                "where you trust it, with the authors' src/convert_ckpt_to_bin.py."
                if weights.suffix.lower() == CHECKPOINT_SUFFIX else "")
        raise WeightsError(f"'{weights}' was refused: it contains Python objects other than tensors, and loading "
                           "it could run arbitrary code. Nothing was executed. Use the official weights or a "
                           f".safetensors file.{hint}") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise WeightsError(f"'{weights}' is truncated or corrupt ({type(exc).__name__}: {exc}). Download it again.") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]  # a Lightning checkpoint: epoch, optimizer states, ... are released here
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"'{weights}' does not hold a flat state dict of tensors.")
    return sd


def weights_family(path: str | os.PathLike) -> str:
    """Which model a weights path holds: ``"m3ddm_plus"`` (M3DDM+, tamaki-lab/M3DDM-Plus) or ``"m3ddm"``.

    Both have the same UNet architecture and keys, so the tensors cannot tell them apart; the first rule that
    applies decides (:func:`detect_family` also says which):

    1. ``m3ddm_family`` in the metadata of a ``.safetensors`` (:mod:`convert_weights` writes it);
    2. an ``"m3ddm_family"`` field in the config: the folder's or sibling ``config.json``, or the config stored
       in a converted file (a user marks a folder of converted ``.bin`` weights this way);
    3. the M3DDM+ training-checkpoint layout (``model.unet.*`` keys, e.g. ``last.ckpt``): only M3DDM+ trains
       with Lightning;
    4. ``plus`` (any case) or ``m3ddm+`` in the name of the weights file, of its folder or of the folder given
       (``M3DDM-Plus``, ``m3ddm_plus``): the ``diffusion_pytorch_model.bin`` of the authors'
       ``convert_ckpt_to_bin.py`` carries no marker;
    5. otherwise ``"m3ddm"``.

    A marker (rules 1, 2) whose value is not one of :data:`FAMILIES` is a :class:`WeightsError`.
    """
    return detect_family(path)[0]


def detect_family(path: str | os.PathLike) -> tuple[str, str]:
    """``(family, the rule that decided it)`` for a weights path; the rules are :func:`weights_family`'s."""
    weights, cfg, cfg_source = resolve_weights(path)
    return family_of(Path(path), weights, cfg, cfg_source)


def family_of(given: Path, weights: Path, cfg: dict[str, Any], cfg_source: str) -> tuple[str, str]:
    """:func:`detect_family` on what :func:`resolve_weights` returned for ``given`` (nothing read twice)."""
    if weights.suffix.lower() == ".safetensors":
        marked = _safetensors_metadata(weights).get(FAMILY_KEY)
        if marked is not None:
            where = f"the metadata of {weights.name}"
            return _known_family(marked, where), where
    if FAMILY_KEY in cfg:
        where = f"'{FAMILY_KEY}' in {cfg_source}"
        return _known_family(cfg[FAMILY_KEY], where), where
    if any(k.startswith(LIGHTNING_UNET_PREFIX) for k in _stored_keys(weights)):
        return "m3ddm_plus", f"the training-checkpoint layout of {weights.name} ({LIGHTNING_UNET_PREFIX}* keys)"
    names = [weights.name, weights.parent.name] + ([given.name] if given.is_dir() else [])
    named = next((n for n in names if _PLUS_NAME.search(n)), None)
    if named:
        return "m3ddm_plus", f"the name '{named}'"
    return "m3ddm", "no M3DDM+ marker, checkpoint layout or name"


def _known_family(value: Any, where: str) -> str:
    if value not in FAMILIES:
        raise WeightsError(f"{where}: '{FAMILY_KEY}' = {value!r}; expected one of {', '.join(FAMILIES)}")
    return value


def _stored_keys(weights: Path) -> list[str]:
    # A mapped torch.load reads only the pickle's index, not the tensor data: cheap even for a 5 GB checkpoint.
    if weights.suffix.lower() == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(weights), framework="pt") as fh:
                return list(fh.keys())
        except Exception as exc:  # safetensors raises its own error type for every malformed header
            raise WeightsError(f"'{weights}' is truncated or corrupt ({type(exc).__name__}: {exc}). "
                               "Download it again.") from exc
    return list(_load_pickle(weights, mmap=True))


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
    """Load an M3DDM UNet (global-frame encoder included) from a folder or a single weights file; an M3DDM+
    training checkpoint contributes its ``model.unet.*`` weights (see :func:`unet_keys`).

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


@dataclass(frozen=True)
class LoadedModel:
    """A loaded UNet and the family whose preprocessing it samples with (``why``: what decided it)."""

    unet: M3DDMUNet
    family: str
    why: str


def load_model(path: str | os.PathLike, dtype: torch.dtype | str, device="cpu", family: str = "auto",
               compute_device=None, ops=None, attention: AttentionFn = sdpa_attention) -> LoadedModel:
    """Every front-end's model loading: ``dtype`` (or its name in :data:`DTYPES`) refused before any weight is read
    where ``compute_device`` (default ``device``) cannot compute in it (:func:`check_dtype`; fp16 on the CPU computes,
    slowly, and is warned of), the weights loaded strictly (:func:`load_unet`, onto ``device``), and the family:
    ``auto`` from the weights (:func:`detect_family`), or the one given (the weights' own is named in ``why`` when
    it differs)."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise WeightsError(f"dtype {dtype!r} is unknown; choose auto, {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    computes_on = torch.device(compute_device if compute_device is not None else device)
    check_dtype(computes_on, dtype)
    if dtype == torch.float16 and computes_on.type == "cpu":
        log.warning("M3DDM: fp16 on the CPU is slow; bf16 or fp32 are faster there")
    if family != "auto" and family not in FAMILIES:
        raise WeightsError(f"family {family!r} is unknown; choose auto, {', '.join(FAMILIES)}")
    unet = load_unet(path, dtype=dtype, device=device, ops=ops, attention=attention)
    found, rule = detect_family(path)
    if family == "auto":
        return LoadedModel(unet, found, f"from {rule}")
    return LoadedModel(unet, family, "chosen" + (f"; the weights say {found}" if found != family else ""))


def _checkpoints(path: str) -> list[str]:
    """The Lightning checkpoints (``*.ckpt``) in a folder, as M3DDM+ training leaves them (last.ckpt, epoch=...)."""
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return sorted(n for n in names if n.lower().endswith(".ckpt") and os.path.isfile(os.path.join(path, n)))


def _is_model_dir(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, n)) for n in WEIGHT_NAMES) or os.path.isdir(os.path.join(path, "unet"))


def list_weights(roots: Iterable[str | os.PathLike]) -> list[str]:
    """What :func:`load_unet` can load under ``roots``, as paths relative to their root ("/"-separated, sorted):
    model folders (config.json + diffusion_pytorch_model.* or a unet/ subfolder), folders of training checkpoints,
    and single weight files.

    A folder of checkpoints loads last.ckpt (else the latest one) with the config.json training left beside it;
    its files stay listed one by one too, so any epoch can be chosen. Checkpoints inside a model folder are listed
    as well: the folder itself loads its diffusion_pytorch_model.* file."""
    found = set()
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            rel = os.path.relpath(dirpath, root)
            ckpts = [os.path.normpath(os.path.join(rel, c)).replace(os.sep, "/") for c in _checkpoints(dirpath)]
            if rel != "." and _is_model_dir(dirpath):
                found.add(rel.replace(os.sep, "/"))
                found.update(ckpts)
                dirnames[:] = []
                continue
            if rel != "." and ckpts:
                found.add(rel.replace(os.sep, "/"))
            for f in filenames:
                if os.path.splitext(f)[1].lower() in WEIGHT_SUFFIXES:
                    found.add(os.path.normpath(os.path.join(rel, f)).replace(os.sep, "/"))
    return sorted(found)


def find_weights(roots: Iterable[str | os.PathLike], name: str) -> Optional[str]:
    """The path of ``name`` (as :func:`list_weights` gives it) in the first of ``roots`` that has it; None where
    none has it, or where the name leads out of its root (``../``)."""
    for root in map(os.path.abspath, roots):
        path = os.path.normpath(os.path.join(root, name))
        if os.path.commonpath([root, path]) == root and os.path.exists(path):
            return path
    return None


def check_dtype(device: torch.device, dtype: torch.dtype) -> None:
    """Refuse (ValueError) a precision ``device`` cannot compute in, before gigabytes of weights are loaded."""
    try:
        a = torch.ones(8, 8, device=device, dtype=dtype)
        torch.nn.functional.conv2d(a[None, None], a[None, None, :3, :3])
        (a @ a).sum().item()
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{str(dtype).replace('torch.', '')} is not supported on {device} ({exc}); "
                         "choose dtype auto (or fp32)") from None
