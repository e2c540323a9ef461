"""Outpaint a frame sequence: canvases -> VAE encode (cached) -> sampling passes -> decode.

The VAE is passed in as two callables so this module stays free of any VAE implementation:
``encode(pixels [k, ch, cw, 3] float 0..1) -> latents [k, 4, ch/8, cw/8]`` already scaled by 0.18215, and
``decode(latents) -> pixels [k, ch, cw, 3] float 0..1``. Every source frame's two canvases are built and encoded
at most once, when a pass first needs them, so memory holds latents, never all canvases.

One pass runner, :func:`run_pass`, samples every clip -- a hand-picked one (M3DDM Sample Clip) and each pass of
a coarse-to-fine schedule (:func:`outpaint_video`, M3DDM Coarse-to-Fine) alike.
"""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from .canvas import CanvasPlan, build_canvas, global_frame_pixels
from .guidance import clip_conditioning
from .resume import PassStore, model_fingerprint, run_key
from .sampler import sample_clip
from .schedule import CLIP_FRAMES, GLOBAL_FRAMES, Pass, Strides, plan_passes
from .shots import shot_bounds, shot_seed

EncodeFn = Callable[[torch.Tensor], torch.Tensor]
DecodeFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SampleSettings:
    steps: int = 50
    s1: float = 2.0  # context guidance: by the masked latents (the visible video)
    s2: float = 4.0  # global guidance: by the global tokens
    scheduler: str = "pndm"
    seed: int = 0
    sequential: bool = False  # low-VRAM: one UNet call per guidance branch


def global_frame_indexes(num_frames: int, count: int = GLOBAL_FRAMES) -> list[int]:
    """``linspace(0, N-1, 16)`` truncated to integers, as the official code picks them."""
    return [int(i) for i in np.linspace(0, num_frames - 1, count).astype(int)]


def window_noise(seed: int, index: int, shape: Sequence[int]) -> torch.Tensor:
    """Noise for sampling pass ``index`` from a CPU generator: the same seed gives the same video on any device."""
    gen = torch.Generator(device="cpu").manual_seed((int(seed) + 7919 * index) % (2 ** 63))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32)


def _frame_array(frames, i: int) -> np.ndarray:
    f = frames[i]
    return f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)


# Canvas building is CPU work (OpenCV's TELEA inpainting, which releases the GIL): threads run it side by side.
CANVAS_WORKERS = min(8, os.cpu_count() or 1)


def build_canvases(frames: Sequence[np.ndarray], plan: CanvasPlan, workers: int = CANVAS_WORKERS) \
        -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`.canvas.build_canvas` of each frame, in order, on up to ``workers`` threads."""
    if workers <= 1 or len(frames) < 2:
        return [build_canvas(f, plan) for f in frames]
    with ThreadPoolExecutor(min(workers, len(frames))) as pool:
        return list(pool.map(lambda f: build_canvas(f, plan), frames))


# Images per VAE call: a VAE's first layers hold 64-128 channels at the full 256x256 canvas (32-64 MB per image in
# float32), so a call on 32 canvases held ~1.7 GB (measured with TAESD on the CPU); 8 keeps it to a few hundred MB.
ENCODE_BATCH = 8


@dataclass
class LatentCache:
    """Per-video cache of each frame's (prefilled, masked) canvas latents; counts encoded images."""

    frames: object
    plan: CanvasPlan
    encode: EncodeFn
    prefilled: dict = field(default_factory=dict)
    masked: dict = field(default_factory=dict)
    squashed: dict = field(default_factory=dict)  # M3DDM+'s global frames: source frames squashed to S x S
    encoded_images: int = 0

    def _encode(self, images: list[np.ndarray]) -> torch.Tensor:
        """``ENCODE_BATCH`` images (uint8, or float 0..1 taken as they are) per VAE call."""
        out = []
        for i in range(0, len(images), ENCODE_BATCH):
            # each image on its own: a batch may mix uint8 canvases with float global frames (M3DDM+)
            pixels = torch.stack([torch.from_numpy(np.ascontiguousarray(im)).float() / 255.0 if im.dtype == np.uint8
                                  else torch.from_numpy(np.ascontiguousarray(im)).float()
                                  for im in images[i:i + ENCODE_BATCH]])
            with torch.no_grad():  # a cached latent must not keep an encoder's autograd graph (GBs) alive
                out.append(self.encode(pixels).float().cpu())
        self.encoded_images += len(images)
        return torch.cat(out)

    def uncond_latent(self) -> torch.Tensor:
        """``[1, 4, h, w]``: the unconditional canvas, all black (-1 in VAE range), encoded."""
        return self._encode([np.zeros((*self.plan.canvas_hw, 3), np.uint8)])

    def ensure(self, indexes: Sequence[int], need_masked: Sequence[int] = ()) -> None:
        """Encode the prefilled canvases of ``indexes`` and the masked ones of ``need_masked`` if missing."""
        todo_p = [i for i in dict.fromkeys(indexes) if i not in self.prefilled]
        todo_m = [i for i in dict.fromkeys(need_masked) if i not in self.masked]
        todo = list(dict.fromkeys(todo_p + todo_m))
        built = dict(zip(todo, build_canvases([_frame_array(self.frames, i) for i in todo], self.plan)))
        images = [built[i][0] for i in todo_p] + [built[i][1] for i in todo_m]
        if not images:
            return
        latents = self._encode(images)
        for k, i in enumerate(todo_p):
            self.prefilled[i] = latents[k]
        for k, i in enumerate(todo_m):
            self.masked[i] = latents[len(todo_p) + k]

    def ensure_squashed(self, indexes: Sequence[int]) -> None:
        """Encode M3DDM+'s global frames of ``indexes`` (:func:`.canvas.global_frame_pixels`) if missing."""
        todo = [i for i in dict.fromkeys(indexes) if i not in self.squashed]
        if todo:
            pixels = [global_frame_pixels(_frame_array(self.frames, i), self.plan) for i in todo]
            self.squashed.update(zip(todo, self._encode(pixels)))


def encode_pass(cache: LatentCache, p: Pass) -> None:
    """Encode what pass ``p`` needs: the prefilled canvases of its frames (the start latents) and the masked
    canvases of its non-guide frames (guides bring their own latent)."""
    cache.ensure(p.frames, need_masked=[f for f, g in zip(p.frames, p.is_guide) if not g])


@dataclass
class OutpaintResult:
    canvases: Optional[torch.Tensor]  # [N, ch, cw, 3] float 0..1, the generated canvases (None: decode=None)
    latents: torch.Tensor  # [N, 4, h, w] final latents per frame
    passes: list[Pass]
    encoded_images: int
    denoising_steps: int  # sampled passes x steps (each step is one UNet call, or one per branch when sequential)
    resumed_passes: list[int] = field(default_factory=list)  # passes loaded from the store instead of sampled


def latent_mask(plan: CanvasPlan) -> torch.Tensor:
    """The pixel mask nearest-resized to the latent grid ``[h, w]`` (1 = generate), as the official code does."""
    pix = torch.from_numpy(plan.pixel_mask())[None, None]
    return F.interpolate(pix, size=plan.latent_hw)[0, 0]


@dataclass
class EncodedVideo:
    """The VAE side of a video: the latent cache, the unconditional latent and the 16 global-frame latents."""

    cache: LatentCache
    uncond_latent: torch.Tensor  # [1, 4, h, w]
    global_latents: torch.Tensor  # [16, 4, h, w]


@dataclass
class PreparedVideo:
    """What every sampling pass of one video shares: the encoded video, the latent mask and the global tokens
    (conditional and unconditional) on the model's device."""

    encoded: EncodedVideo
    mask: torch.Tensor  # [h, w], 1 = generate
    global_tokens: torch.Tensor
    uncond_global_tokens: torch.Tensor


def encode_video(frames, plan: CanvasPlan, encode: EncodeFn, global_latents: Optional[torch.Tensor] = None,
                 preencode: bool = False, uncond_latent: Optional[torch.Tensor] = None) -> EncodedVideo:
    """All VAE encoding a video needs before the UNet runs (so the two need not alternate on the device).

    ``global_latents`` ``[16, 4, h, w]`` default to the masked canvases of frames ``linspace(0, N-1, 16)``, taken
    from the cache (no extra encode). ``preencode`` encodes both canvases of every frame now, in batches of 16;
    otherwise passes encode what they need on first use. ``uncond_latent`` (the black canvas of the same plan and
    VAE, encoded) saves encoding it again, e.g. for every shot of a video.
    """
    n = len(frames)
    if n < 1:
        raise ValueError("the video has no frames")
    cache = LatentCache(frames, plan, encode)
    if preencode:
        for i in range(0, n, CLIP_FRAMES):
            idx = list(range(i, min(n, i + CLIP_FRAMES)))
            cache.ensure(idx, need_masked=idx)
    if global_latents is None:
        global_latents = global_frame_latents(cache)
    return EncodedVideo(cache, cache.uncond_latent() if uncond_latent is None else uncond_latent, global_latents)


def global_frame_latents(cache: LatentCache) -> torch.Tensor:
    """The latents of the 16 global frames, frames ``linspace(0, N-1, 16)`` (cached): their masked canvases
    ``[16, 4, h, w]`` (M3DDM), or the source frames squashed to the working size ``[16, 4, S/8, S/8]`` (M3DDM+)."""
    idx = global_frame_indexes(len(cache.frames))
    if cache.plan.family == "m3ddm_plus":
        cache.ensure_squashed(idx)
        return torch.stack([cache.squashed[i] for i in idx])
    cache.ensure([], need_masked=idx)
    return torch.stack([cache.masked[i] for i in idx])


def prepare_video(model, encoded: EncodedVideo, plan: CanvasPlan) -> PreparedVideo:
    """Global tokens (conditional and unconditional) computed once per video on the model's device."""
    device, dtype = model.device, model.dtype
    with torch.no_grad():
        tokens = model.encode_global(encoded.global_latents.to(device, dtype))
        uncond_tokens = model.encode_global(torch.zeros_like(encoded.global_latents).to(device, dtype))
    return PreparedVideo(encoded, latent_mask(plan), tokens, uncond_tokens)


def run_pass(model, video: PreparedVideo, p: Pass, guides: Mapping[int, torch.Tensor], fps: float,
             settings: SampleSettings, noise_index: int = 0, callback: Optional[Callable[[dict], None]] = None,
             check_interrupt: Optional[Callable[[], None]] = None) -> dict[int, torch.Tensor]:
    """Sample one pass and return the latent ``[4, h, w]`` (CPU, float32) of each of its distinct frames, in clip
    order: the pass's result at the positions of ``p.writes``, the given latent for its guide frames.

    ``guides`` maps frame index -> already generated latent (it may hold more frames than the pass uses; every
    guide frame of ``p`` must be in it). The model is conditioned on ``fps // p.stride``; the noise comes from
    ``window_noise(settings.seed, noise_index)``. ``callback`` gets the sampler's step info plus ``"frames"``.
    """
    missing = [f for f in p.guide_frames if f not in guides]
    if missing:
        raise ValueError(f"guide frames {missing[:8]} of this pass have no latent")
    device = model.device
    cache = video.encoded.cache
    encode_pass(cache, p)
    masked = torch.stack([guides[f] if g else cache.masked[f] for f, g in zip(p.frames, p.is_guide)])
    pos_guides = {pos: guides[f].to(device) for pos, (f, g) in enumerate(zip(p.frames, p.is_guide)) if g}
    cond = clip_conditioning(masked.to(device), video.encoded.uncond_latent.to(device), video.mask.to(device),
                             pos_guides, video.global_tokens, video.uncond_global_tokens)
    start = rearrange(torch.stack([cache.prefilled[f] for f in p.frames]), "f c h w -> 1 c f h w").to(device)
    h, w = video.mask.shape
    noise = window_noise(settings.seed, noise_index, (1, 4, len(p.frames), h, w)).to(device)
    step_cb = None if callback is None else (lambda info: callback(dict(info, frames=list(p.frames))))
    latents = sample_clip(model, start, cond, noise, p.fps(fps), settings.steps, settings.s1, settings.s2,
                          settings.scheduler, step_cb, check_interrupt, settings.sequential)
    written = {frame: latents[0, :, pos].float().cpu() for pos, frame in p.writes}
    return {f: written[f] if f in written else guides[f].float().cpu() for f in p.distinct_frames}


def resume_key(content: str, plan: CanvasPlan, encoded: EncodedVideo, model, settings: SampleSettings, fps: float,
               strides: Strides, schedule: str, cuts: Sequence[int] = ()) -> str:
    """The :class:`.resume.PassStore` key of an :func:`outpaint_video` run: the frames' ``content`` hash, the plan,
    the VAE's latents of the global frames and the unconditional canvas, the weights, the settings, fps, the
    schedule and the shots' ``cuts``. ``sequential`` is left out: it changes how the branches are batched, not
    what they compute."""
    return run_key(content=content, plan=plan, global_latents=encoded.global_latents,
                   uncond_latent=encoded.uncond_latent, model=model_fingerprint(model),
                   settings=dataclasses.replace(settings, sequential=False), fps=float(fps), strides=strides,
                   schedule=schedule, cuts=[int(c) for c in cuts])


def decode_latents(decode: DecodeFn, latents: torch.Tensor, batch: int = CLIP_FRAMES) -> torch.Tensor:
    """``[N, 4, h, w]`` scaled latents -> ``[N, ch, cw, 3]`` float 0..1, decoded in batches."""
    with torch.no_grad():
        out = [decode(latents[i:i + batch]).float().cpu() for i in range(0, latents.shape[0], batch)]
    return torch.cat(out).clamp(0, 1)


def shot_of(encoded: EncodedVideo, start: int, end: int) -> EncodedVideo:
    """The frames ``start:end`` of an already encoded video as a video of their own: their cached latents
    (renumbered from 0, not copied) and global frames taken from them alone."""
    cache = encoded.cache
    sub = LatentCache(cache.frames[start:end], cache.plan, cache.encode,
                      *({i - start: t for i, t in part.items() if start <= i < end}
                        for part in (cache.prefilled, cache.masked, cache.squashed)))
    return EncodedVideo(sub, encoded.uncond_latent, global_frame_latents(sub))


def plan_shots(num_frames: int, cuts: Sequence[int], strides: Strides = "auto", schedule: str = "fixed") \
        -> list[tuple[tuple[int, int], list[Pass]]]:
    """``[((start, end), passes), ...]``: each shot's frame range and its passes (numbered within the shot).
    Raises ValueError naming the shot when its schedule cannot cover it (e.g. a 1-frame shot, official schedule)."""
    bounds = shot_bounds(num_frames, cuts)
    plans = []
    for k, (start, end) in enumerate(bounds):
        try:
            plans.append(((start, end), plan_passes(end - start, strides, schedule)))
        except ValueError as exc:
            if len(bounds) == 1:
                raise
            raise ValueError(f"shot {k + 1} of {len(bounds)} (frames {start}-{end - 1}): {exc}") from None
    return plans


def shot_settings(settings: SampleSettings, shot: int) -> SampleSettings:
    """The settings shot ``shot`` samples with: its own seed (:func:`.shots.shot_seed`), the rest unchanged."""
    return dataclasses.replace(settings, seed=shot_seed(settings.seed, shot))


def pass_dependencies(passes: Sequence[Pass]) -> list[set[int]]:
    """For each pass, the earlier passes that generate its guide frames: what must finish before it can run.
    Passes with no dependency between them may run at the same time (on other workers) with the same result."""
    writer: dict[int, int] = {}
    deps = []
    for k, p in enumerate(passes):
        deps.append({writer[f] for f in p.guide_frames if f in writer})
        writer.update({f: k for _, f in p.writes})
    return deps


def critical_path(passes: Sequence[Pass]) -> int:
    """The number of passes on the longest chain of dependencies: the wall time of a schedule, in passes, with
    unlimited workers (the sparsest level's windows chain; finer levels fan out)."""
    depth: list[int] = []
    for deps in pass_dependencies(passes):
        depth.append(1 + max((depth[d] for d in deps), default=0))
    return max(depth, default=0)


def pack_encoded(encoded: EncodedVideo) -> dict:
    """An encoded video as plain tensors (to send to another process): ``prefilled``/``masked`` ``[N, 4, h, w]``
    and ``uncond`` ``[1, 4, h, w]``; :func:`unpack_encoded` turns it back (the VAE is not part of it)."""
    cache = encoded.cache
    n = len(cache.frames)
    if len(cache.prefilled) < n or len(cache.masked) < n:
        raise ValueError("pack_encoded needs every frame encoded (stream.encode_frames, or encode_video(..., "
                         "preencode=True))")
    return {"prefilled": torch.stack([cache.prefilled[i] for i in range(n)]),
            "masked": torch.stack([cache.masked[i] for i in range(n)]),
            "squashed": dict(cache.squashed), "uncond": encoded.uncond_latent, "plan": cache.plan}


def unpack_encoded(pack: dict) -> EncodedVideo:
    """The :class:`EncodedVideo` of :func:`pack_encoded` (every latent present: nothing is encoded again)."""
    n = pack["prefilled"].shape[0]
    cache = LatentCache(range(n), pack["plan"], None, dict(enumerate(pack["prefilled"])),
                        dict(enumerate(pack["masked"])), dict(pack.get("squashed", {})))
    return EncodedVideo(cache, pack["uncond"], global_frame_latents(cache))


def outpaint_video(model, frames, plan: CanvasPlan, encode: Optional[EncodeFn], decode: Optional[DecodeFn], fps: float,
                   settings: SampleSettings = SampleSettings(), strides: Strides = "auto", schedule: str = "fixed",
                   callback: Optional[Callable[[dict], None]] = None,
                   check_interrupt: Optional[Callable[[], None]] = None,
                   encoded: Optional[EncodedVideo] = None, decode_batch: int = CLIP_FRAMES,
                   store: Optional[PassStore] = None, cuts: Sequence[int] = ()) -> OutpaintResult:
    """Outpaint ``frames`` (``[N, H, W, 3]`` tensor/array or a sequence of frames, uint8 or float 0..1).

    ``schedule``: see :func:`.schedule.plan_passes`. ``callback`` gets ``{"pass", "passes", "i", "total", "t",
    "x", "denoised", "frames"}`` after every step; ``check_interrupt`` is called before every step and may raise.
    ``encoded`` (from :func:`encode_video` or :func:`.stream.encode_frames`) skips the encoding step when the
    caller did it already (``encode`` may then be None, and ``frames`` anything with the frame count as its
    length, e.g. ``range(n)``). ``decode=None`` leaves the canvases undecoded (a streamed composite decodes them
    chunk by chunk). ``store`` (:class:`.resume.PassStore`, keyed by the caller over everything the result
    depends on) makes the run resumable: passes found there are loaded instead of sampled, each sampled pass is
    saved, and the store is cleared once the result exists.

    ``cuts`` (first frames of new shots, :mod:`.shots`) split the video into shots, each outpainted as its own
    video: its own 16 global frames, its own schedule, no guide across a cut, and the seed
    :func:`.shots.shot_seed` (the first shot keeps ``settings.seed``). The result's passes are numbered in the
    whole video's frames.
    """
    n = len(frames)
    if n < 1:
        raise ValueError("the video has no frames")
    shots = plan_shots(n, cuts, strides, schedule)  # checked before any encoding
    bounds, shot_passes = [b for b, _ in shots], [p for _, p in shots]
    total = sum(len(p) for p in shot_passes)
    final: dict[int, torch.Tensor] = {}
    resumed, done = [], 0
    # a shot of an encoded video counts only what it encodes itself (global frames the source lacked)
    encoded_images = encoded.cache.encoded_images if encoded is not None and len(bounds) > 1 else 0
    for shot, ((start, end), passes) in enumerate(zip(bounds, shot_passes)):
        if len(bounds) == 1:
            shot_encoded = encoded if encoded is not None else encode_video(frames, plan, encode)
        elif encoded is not None:
            shot_encoded = shot_of(encoded, start, end)
        else:  # the black canvas is the same for every shot: encoded once
            shot_encoded = encode_video(frames[start:end], plan, encode,
                                        uncond_latent=None if shot == 0 else shot_encoded.uncond_latent)
        video = prepare_video(model, shot_encoded, plan)
        settings_of_shot = shot_settings(settings, shot)
        local: dict[int, torch.Tensor] = {}
        for k, p in enumerate(passes):
            index = done + k
            stored = store.load(index) if store is not None else None
            if stored is not None and set(stored) == {start + f for f in p.distinct_frames}:
                local.update({f - start: t for f, t in stored.items()})
                resumed.append(index)
                continue
            step_cb = None if callback is None else (
                lambda info, index=index, start=start: callback(dict(
                    info, frames=[start + f for f in info["frames"]], **{"pass": index, "passes": total})))
            latents = run_pass(model, video, p, local, fps, settings_of_shot, k, step_cb, check_interrupt)
            if store is not None:
                store.save(index, {start + f: t for f, t in latents.items()})
            local.update(latents)
        final.update({start + f: t for f, t in local.items()})
        done += len(passes)
        encoded_images += shot_encoded.cache.encoded_images
    latents = torch.stack([final[i] for i in range(n)])
    canvases = None if decode is None else decode_latents(decode, latents, decode_batch)
    if store is not None:
        store.clear()
    passes = [p.shifted(start) for (start, _), ps in zip(bounds, shot_passes) for p in ps]
    return OutpaintResult(canvases, latents, passes, encoded_images, (total - len(resumed)) * settings.steps, resumed)
