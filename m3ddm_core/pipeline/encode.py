"""The VAE side of a video: every frame's two working canvases and each shot's global frames, encoded once.

One encoder, :func:`encode_video`, serves IMAGE batches and streamed files alike: frames arrive as an iterable
(a tensor/array of frames, or a file read frame by frame), ``batch`` at a time, and only latents are kept (two
``[4, h, w]`` float32 latents per frame, 32 KiB at the 256 canvas), so a long high-resolution video is encoded in
bounded memory. The result, :class:`EncodedVideo`, is plain tensors: sampling never needs the frames or the VAE
again, and a Ray worker receives it as it is.

The VAE is a callable ``encode(pixels [k, ch, cw, 3] float 0..1) -> latents [k, 4, ch/8, cw/8]`` already scaled by
0.18215, so this module stays free of any VAE implementation.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import cv2
import numpy as np
import torch

from .canvas import CanvasPlan, build_canvas, global_frame_pixels
from .heap import release_freed_memory
from .schedule import CLIP_FRAMES, GLOBAL_FRAMES
from .shots import check_setups, shot_bounds

EncodeFn = Callable[[torch.Tensor], torch.Tensor]
SD_LATENT_SCALE = 0.18215  # Stable Diffusion 1.x's VAE latents are scaled by it before the UNet sees them
Cuts = Union[Sequence[int], Callable[[], Sequence[int]]]

# Images per VAE call: a VAE's first layers hold 64-128 channels at the full 256x256 canvas (32-64 MB per image in
# float32), so a call on 32 canvases held ~1.7 GB (measured with TAESD on the CPU); 8 keeps it to a few hundred MB.
ENCODE_BATCH = 8
# Canvas building is CPU work (OpenCV's TELEA inpainting, which releases the GIL): threads run it side by side.
CANVAS_WORKERS = min(8, os.cpu_count() or 1)


def global_frame_indexes(num_frames: int, count: int = GLOBAL_FRAMES) -> list[int]:
    """``linspace(0, N-1, 16)`` truncated to integers, as the official code picks them."""
    return [int(i) for i in np.linspace(0, num_frames - 1, count).astype(int)]


def frame_array(frame) -> np.ndarray:
    """One frame ``[H, W, 3]`` (tensor or array, uint8 or float 0..1) as a numpy array, values unchanged."""
    return frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)


def build_canvases(frames: Sequence[np.ndarray], plan: CanvasPlan, workers: int = CANVAS_WORKERS) \
        -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`.canvas.build_canvas` of each frame, in order, on up to ``workers`` threads."""
    if workers <= 1 or len(frames) < 2:
        return [build_canvas(f, plan) for f in frames]
    with ThreadPoolExecutor(min(workers, len(frames))) as pool:
        return list(pool.map(lambda f: build_canvas(f, plan), frames))


def encode_images(encode: EncodeFn, images: Sequence[np.ndarray]) -> torch.Tensor:
    """``[k, 4, h, w]`` CPU float32 latents of ``images`` (uint8, or float 0..1 taken as they are), ``ENCODE_BATCH``
    per VAE call."""
    out = []
    for i in range(0, len(images), ENCODE_BATCH):
        # each image on its own: a batch may mix uint8 canvases with float global frames (M3DDM+)
        pixels = torch.stack([torch.from_numpy(np.ascontiguousarray(im)).float() / 255.0 if im.dtype == np.uint8
                              else torch.from_numpy(np.ascontiguousarray(im)).float()
                              for im in images[i:i + ENCODE_BATCH]])
        with torch.no_grad():  # a kept latent must not keep an encoder's autograd graph (GBs) alive
            out.append(encode(pixels).float().cpu())
    return torch.cat(out)


def uncond_latent(plan: CanvasPlan, encode: EncodeFn) -> torch.Tensor:
    """``[1, 4, h, w]``: the unconditional canvas, all black (-1 in VAE range), encoded."""
    return encode_images(encode, [np.zeros((*plan.canvas_hw, 3), np.uint8)])


def global_frame_images(frames: Sequence, plan: CanvasPlan) -> list[np.ndarray]:
    """The images the global frames are encoded from, for ``frames`` (each ``[H, W, 3]``): their masked canvases
    (M3DDM) or the whole frames squashed to the working size (M3DDM+)."""
    if plan.family == "m3ddm_plus":
        return [global_frame_pixels(frame_array(f), plan) for f in frames]
    return [c[1] for c in build_canvases([frame_array(f) for f in frames], plan)]


def encode_global_frames(frames, plan: CanvasPlan, encode: EncodeFn) -> torch.Tensor:
    """``[16, 4, gh, gw]``: the 16 global frames of ``frames`` (``[N, H, W, 3]``), frames ``linspace(0, N-1, 16)``."""
    return encode_images(encode, global_frame_images([frames[i] for i in global_frame_indexes(len(frames))], plan))


@dataclass(frozen=True)
class EncodedVideo:
    """A video as the UNet needs it, in plain tensors: ``prefilled`` and ``masked`` canvas latents ``[N, 4, h, w]``,
    the unconditional latent ``uncond`` ``[1, 4, h, w]``, and one ``[16, 4, gh, gw]`` set of global-frame latents
    per shot of ``cuts``. ``encoded_images`` counts the VAE's work."""

    plan: CanvasPlan
    prefilled: torch.Tensor
    masked: torch.Tensor
    uncond: torch.Tensor
    global_latents: tuple
    cuts: tuple = ()
    encoded_images: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.prefilled.shape[0])


def chunks(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def shot_global_frames(count: int, cuts: Sequence[int] = (), groups: Optional[Sequence[int]] = None) \
        -> list[list[int]]:
    """For each shot of ``count`` frames split at ``cuts``, the 16 video frames its global frames come from:
    ``linspace`` over the shot -- or, for the shots of one camera set-up (``groups``, see
    :func:`.shots.check_setups`), over all of that set-up's shots together, so a returning set-up sees the same
    global frames as its earlier shots."""
    bounds = shot_bounds(count, cuts)
    groups = check_setups(groups, len(bounds))
    members: dict[int, list[int]] = {}
    for shot, (start, end) in enumerate(bounds):
        members.setdefault(groups[shot], []).extend(range(start, end))
    picked = {g: [frames[i] for i in global_frame_indexes(len(frames))] for g, frames in members.items()}
    return [picked[g] for g in groups]


def encode_video(frames: Iterable, count: int, plan: CanvasPlan, encode: EncodeFn, cuts: Cuts = (),
                 global_latents: Optional[torch.Tensor] = None, batch: int = CLIP_FRAMES,
                 on_chunk: Optional[Callable[[int], None]] = None,
                 groups: Optional[Sequence[int] | Callable[[], Sequence[int]]] = None) -> EncodedVideo:
    """Build and encode both canvases of ``count`` frames (``[H, W, 3]`` uint8 or float 0..1; a ``[N, H, W, 3]``
    tensor, an array, or an iterator such as a file being read) as they arrive, ``batch`` frames at a time, and the
    global frames of every shot on the way. ``on_chunk(done)`` reports progress.

    ``cuts``: the first frames of new shots, or a callable giving them once every frame has arrived (cuts detected
    while the file is read). Each shot's global frames are frames ``linspace`` over the shot: the masked canvases
    (M3DDM, no extra encode), or the source frames squashed to the working size (M3DDM+), encoded as they pass
    (every frame's when the cuts are known only at the end). ``global_latents`` ``[16, 4, gh, gw]`` (M3DDM Encode
    Global Frames) replace the global frames of a one-shot video. ``groups``: shots of one camera set-up share
    their global frames (:func:`shot_global_frames`); a callable gives them once every frame has arrived.
    """
    if count < 1:
        raise ValueError("the video has no frames")
    if callable(cuts) or callable(groups):
        squash = set(range(count))
    else:
        squash = {i for shot in shot_global_frames(count, cuts, groups) for i in shot}
    if plan.family != "m3ddm_plus" or global_latents is not None:
        squash = set()
    prefilled: list[torch.Tensor] = []
    masked: list[torch.Tensor] = []
    squashed: dict[int, torch.Tensor] = {}
    images, done = 0, 0
    for chunk in chunks(frames, batch):
        chunk = [frame_array(f) for f in chunk]
        canvases = build_canvases(chunk, plan)
        wanted = [k for k in range(len(chunk)) if done + k in squash]
        latents = encode_images(encode, [c[0] for c in canvases] + [c[1] for c in canvases] +
                                [global_frame_pixels(chunk[k], plan) for k in wanted])
        k = len(chunk)
        prefilled.append(latents[:k].clone())
        masked.append(latents[k:2 * k].clone())
        squashed.update({done + j: t.clone() for j, t in zip(wanted, latents[2 * k:])})
        images += len(latents)
        done += k
        del chunk, canvases, latents
        release_freed_memory()  # the chunk's native frames and canvases, freed on other threads
        if on_chunk is not None:
            on_chunk(done)
    if done != count:
        raise ValueError(f"expected {count} frames, the stream gave {done}")
    found = tuple(shot_bounds(count, cuts() if callable(cuts) else cuts))
    masked_all = torch.cat(masked)
    if global_latents is not None:
        if len(found) > 1:
            raise ValueError("global frames given for the whole video, but it is split into shots (each takes its own)")
        per_shot = (global_latents,)
    else:
        setups = groups() if callable(groups) else groups
        sources = shot_global_frames(count, [start for start, _ in found[1:]], setups)
        per_shot = tuple(torch.stack([squashed[i] if squash else masked_all[i] for i in shot]) for shot in sources)
    uncond = uncond_latent(plan, encode)
    return EncodedVideo(plan, torch.cat(prefilled), masked_all, uncond, per_shot,
                        tuple(start for start, _ in found[1:]), images + 1)


def preview_canvases(frames, plan: CanvasPlan, cuts: Sequence[int] = (), most: int = CLIP_FRAMES,
                     caption: Optional[Callable[[int], str]] = None) -> torch.Tensor:
    """The prefilled working canvases the model starts from, to check a plan before sampling: ``[k, ch, cw, 3]``
    float 0..1 of the frames on both sides of each of the first ``most`` ``cuts``, or without cuts of up to
    ``most`` frames spread over the video (those the global frames use). ``frames``: ``[N, H, W, 3]`` float 0..1
    or uint8. ``caption(frame)``: a line written in each shown canvas's top left corner (its shot and set-up)."""
    n = len(frames)
    if cuts:
        shown = [i for c in list(cuts)[:most] for i in (c - 1, c)]
    else:
        shown = global_frame_indexes(n) if n > most else range(n)
    canvases = [build_canvas(frame_array(frames[i]), plan)[0] for i in dict.fromkeys(shown)]
    if caption is not None:
        canvases = [_captioned(c, caption(i)) for c, i in zip(canvases, dict.fromkeys(shown))]
    return torch.from_numpy(np.stack(canvases)).float() / 255.0


def _captioned(canvas: np.ndarray, text: str) -> np.ndarray:
    """``canvas`` (uint8 ``[h, w, 3]``) with ``text`` in white on a black box in its top left corner: letters a
    fortieth of its width (at least 9 px high where the line fits)."""
    out = np.ascontiguousarray(canvas).copy()
    pad = max(2, round(out.shape[1] / 100))
    scale = max(0.35, out.shape[1] / 640)
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    scale *= min(1.0, (out.shape[1] - 2 * pad) / width)  # the whole line on a small canvas
    thick = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(out, (0, 0), (w + 2 * pad, h + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(out, text, (pad, pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out
