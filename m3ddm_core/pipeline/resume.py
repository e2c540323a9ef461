"""Resumable runs: every finished sampling pass's latents on disk, so that a run queued again after a Cancel, an
out-of-memory error or a crash does only the passes that remain.

A run is identified by a key over everything its latents depend on -- the video's content, the canvas plan, the
VAE's latents of the global frames and of the unconditional canvas, the model's weights, the sampling settings,
the fps and the passes -- so a stored pass is only ever reused by a run that would compute the same thing. Each
pass is one safetensors file written atomically; the run's folder is removed once the whole result exists, and
the store keeps at most ``max_bytes`` of unfinished runs (the oldest go first).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

log = logging.getLogger("M3DDM")

DEFAULT_MAX_BYTES = 2 * 2 ** 30  # a 1800-frame video's latents take ~30 MB at the 256 canvas


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()


def fingerprint(frames: torch.Tensor) -> str:
    """A cheap identity of a frame batch ``[N, H, W, C]``: its shape and three sampled frames, to catch frames or
    global frames from another video (milliseconds for any length; :func:`content_hash` reads every pixel)."""
    n = frames.shape[0]
    h = hashlib.sha1(str(tuple(frames.shape)).encode())
    for i in sorted({0, n // 2, n - 1}):
        h.update(frames[i, ::7, ::7].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def content_hash(frames) -> str:
    """A hash of every byte of every frame (``[N, H, W, C]`` tensor or array, or a sequence of frames). SHA-1 runs
    at ~1.7 GB/s here: a few seconds for a 15 s 1080p IMAGE batch, next to minutes of sampling; any changed pixel
    changes it."""
    h = hashlib.sha1(str(len(frames)).encode())
    for i in range(len(frames)):
        f = frames[i]
        f = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
        h.update(f"{f.shape}{f.dtype}".encode())
        h.update(np.ascontiguousarray(f).data)
    return h.hexdigest()


def source_identity(source, start: int, count: int) -> str:
    """What a resumed run of frames ``start .. start+count-1`` of a video must match: the file (absolute path,
    size, modification time) or, for an in-memory stream, its bytes."""
    h = hashlib.sha1(f"{start}:{count}".encode())
    if isinstance(source, io.BytesIO):
        h.update(source.getbuffer())
    else:
        st = os.stat(source)
        h.update(f"{os.path.abspath(source)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def model_fingerprint(model, samples: int = 256) -> str:
    """Weights identity of a UNet: its config, dtype and ``samples`` evenly spaced values of every parameter and
    buffer -- M3DDM and a fine-tune such as M3DDM+ differ somewhere inside, not necessarily in the first or last
    layer -- at the cost of a few hundred values per tensor (no full copy off the GPU)."""
    h = hashlib.sha256(json.dumps(getattr(model, "raw_config", {}), sort_keys=True).encode())
    h.update(str(model.dtype).encode())
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        flat = t.detach().reshape(-1)
        h.update(name.encode())
        h.update(_tensor_bytes(flat[::max(1, flat.numel() // samples)]))
    return h.hexdigest()


def stores_in(root: str | os.PathLike) -> Callable[[Optional[str]], Optional[PassStore]]:
    """What a front-end whose finished passes wait under ``root`` lends as ``Runtime.store``: the store of a
    run's key (None for a run without one: not resumable)."""
    return lambda key: None if key is None else PassStore(root, key)


def run_key(**identity: Any) -> str:
    """A stable key over ``identity``: strings, numbers, sequences, dataclasses and tensors (hashed)."""
    def encode(v):
        if isinstance(v, torch.Tensor):
            return {"tensor": hashlib.sha256(_tensor_bytes(v)).hexdigest(), "shape": list(v.shape)}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: encode(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [encode(x) for x in v]
        if isinstance(v, dict):
            return {str(k): encode(x) for k, x in v.items()}
        return v
    blob = json.dumps({k: encode(v) for k, v in sorted(identity.items())}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class PassStore:
    """The finished passes of one run, under ``root / key``."""

    def __init__(self, root: str | os.PathLike, key: str, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root, self.key, self.max_bytes = Path(root), key, int(max_bytes)
        self.dir = self.root / key
        self.failed = False

    def _path(self, index: int) -> Path:
        return self.dir / f"pass_{index:05d}.safetensors"

    def done(self) -> list[int]:
        """Indexes of the stored passes."""
        if not self.dir.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in self.dir.glob("pass_*.safetensors"))

    def load(self, index: int) -> Optional[dict[int, torch.Tensor]]:
        """``{frame: latent [4, h, w]}`` of pass ``index``, or None when it is not stored (or unreadable)."""
        from safetensors.torch import load_file

        path = self._path(index)
        if not path.is_file():
            return None
        try:
            data = load_file(str(path))
        except Exception:  # a damaged file is recomputed, never trusted
            return None
        return {int(f): data["latents"][i] for i, f in enumerate(data["frames"].tolist())}

    def save(self, index: int, latents: dict[int, torch.Tensor]) -> bool:
        """Store pass ``index`` (written to a temporary name, then renamed: never half a file under the name).
        A store that cannot be written (full disk, no permission) only costs the ability to resume: it is
        logged once and the run goes on. Returns whether the pass was stored."""
        from safetensors.torch import save_file

        if self.failed:
            return False
        frames = list(latents)
        tmp = self.dir / f".pass_{index:05d}.partial"
        try:
            if not self.dir.is_dir():
                self._prune()
                self.dir.mkdir(parents=True, exist_ok=True)
            save_file({"frames": torch.tensor(frames, dtype=torch.int64),
                       "latents": torch.stack([latents[f].float().cpu() for f in frames]).contiguous()}, str(tmp))
            os.replace(tmp, self._path(index))
            os.utime(self.dir)
        except OSError as exc:
            self.failed = True
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # the folder itself could not be made
                pass
            log.warning("M3DDM: cannot keep finished passes in %s (%s); this run will not be resumable", self.dir, exc)
            return False
        return True

    def clear(self) -> None:
        """Remove this run's passes (the run finished)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _prune(self) -> None:
        """Drop the oldest unfinished runs until the store is below ``max_bytes``."""
        if not self.root.is_dir():
            return
        runs = []
        for d in self.root.iterdir():
            if d.is_dir() and d != self.dir:
                size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
                runs.append((d.stat().st_mtime, size, d))
        total = sum(size for _, size, _ in runs)
        for _, size, d in sorted(runs):
            if total <= self.max_bytes:
                break
            shutil.rmtree(d, ignore_errors=True)
            total -= size
