"""The one entry every front-end runs a video through, in the order of the algorithm:

    plan the passes  ->  encode the working canvases  ->  place the model  ->  run the plan  ->  decode
    (:func:`prepare`: cuts found while the frames stream in)   (:func:`sample`: resumable, any subset of passes)

The IMAGE nodes, M3DDM Outpaint Video, the review gate (Keyframe Preview, then Continue), the batch command and the
Ray driver differ only in what they lend it -- a :class:`Runtime`: where the model runs and how much is batched,
where finished passes wait, progress and interruption -- and in their own I/O around it. The review gate calls the
two halves apart: :func:`prepare` and a :func:`sample` of the key frames on its first run, a :func:`sample` of the
rest on its second, so nothing is encoded or sampled twice.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import torch

from .canvas import CanvasPlan
from .composite import output_to_canvas
from .encode import EncodedVideo, EncodeFn, encode_video
from .executors import run_passes, run_plan
from .passes import DecodeFn, SampleSettings, decode_latents, prepare_shot, resume_key, run_pass
from .plan import PlannedPass, VideoPlan, plan_video
from .resume import PassStore, content_hash, stores_in
from .schedule import CLIP_FRAMES, Pass, Strides, clip_pass
from .edits import EditReader
from .inputs import UNKNOWN_LENGTH, Edit, parse_frame_indexes, parse_setups, parse_shot_seeds
from .transitions import BorderBlend, Transition

log = logging.getLogger("M3DDM")
StepCallback = Callable[[dict], None]
Setups = Union[None, str, Sequence[int]]  # returning camera set-ups: a group per shot, "auto" or None


def _no_store(key: Optional[str]) -> Optional[PassStore]:
    return None


def _no_progress(total_steps: int, done_steps: int, model) -> Optional[StepCallback]:
    return None


@dataclass(frozen=True)
class Runtime:
    """What a front-end lends the pipeline.

    place_model(settings, latent_hw) -> (model, settings): the UNet ready on its device, with the batching its
    free memory allows (:func:`.executors.choose_branching`);
    store(key) -> the :class:`.resume.PassStore` a run with this key resumes from, or None (not resumable); the
    key is None when the video has no identity (:attr:`PreparedVideo.content`); or the folder where finished
    passes wait, each run under its key (:func:`.resume.stores_in`);
    progress(total_steps, done_steps, model) -> the sampler's step callback, or None; ``done_steps`` are those of
    passes loaded from the store;
    check_interrupt() raises to stop between steps;
    name: who runs it, in the log lines (a node's id).
    """

    place_model: Callable[[SampleSettings, tuple[int, int]], tuple[Any, SampleSettings]]
    store: Union[Callable[[Optional[str]], Optional[PassStore]], str, os.PathLike] = _no_store
    progress: Callable[[int, int, Any], Optional[StepCallback]] = _no_progress
    check_interrupt: Optional[Callable[[], None]] = None
    name: str = "M3DDM"

    def __post_init__(self):
        if isinstance(self.store, (str, os.PathLike)):
            object.__setattr__(self, "store", stores_in(self.store))

    @classmethod
    def fixed(cls, model, store: Optional[PassStore] = None, callback: Optional[StepCallback] = None,
              check_interrupt: Optional[Callable[[], None]] = None) -> "Runtime":
        """A model already placed, used with the settings as given, and one ``store`` whatever the key (tests,
        benchmarks)."""
        return cls(lambda settings, latent_hw: (model, settings), lambda key: store,
                   lambda total, done, m: callback, check_interrupt)


@dataclass(frozen=True)
class PreparedVideo:
    """A video planned and encoded, ready to sample: what the review gate keeps between its two runs.

    ``content`` identifies the frames (a hash, or a file's identity) for the resume key; None: not resumable."""

    encoded: EncodedVideo
    plan: VideoPlan
    settings: SampleSettings
    fps: float
    content: Optional[str] = None
    transitions: tuple = ()  # dissolves and fades (:class:`.transitions.Transition`): their borders are blended

    @property
    def edit(self) -> Edit:
        """How the video was cut: the plan's cuts and set-ups, the transitions."""
        return Edit(tuple(self.plan.cuts), tuple(self.transitions), tuple(self.plan.groups))

    def store_key(self, model, settings: Optional[SampleSettings] = None) -> Optional[str]:
        """The key of this run's pass store with ``model`` (None when not resumable)."""
        if self.content is None:
            return None
        return resume_key(self.content, self.encoded, model, settings or self.settings, self.fps, self.plan)


def prepare(frames: Iterable, num_frames: int, canvas: CanvasPlan, encode: EncodeFn, settings: SampleSettings,
            fps: float, *, seed: int = 0, strides: Strides = "auto", schedule: str = "fixed", cuts: Sequence[int] = (),
            detect_cuts: bool = False, shot_seeds: Union[Mapping[int, int], str, None] = None,
            global_latents: Optional[torch.Tensor] = None, content: Optional[str] = None, resumable: bool = False,
            on_chunk: Optional[Callable[[int], None]] = None, groups: Setups = None,
            detect_transitions: bool = False, transitions: Sequence[Transition] = ()) -> PreparedVideo:
    """Plan and encode ``num_frames`` frames (a ``[N, H, W, 3]`` batch or an iterator such as a file being read,
    uint8 or float 0..1) for ``canvas``.

    The plan (every pass of every shot, its seeds derived from ``seed``, a shot re-rolled by ``shot_seeds``: shot
    index -> seed, or the text a user writes, :func:`.inputs.parse_shot_seeds`) is made
    before anything is encoded, so a schedule that cannot cover the video fails at once -- unless the edit is read
    on the way: ``detect_cuts`` finds the hard cuts, ``detect_transitions`` dissolves and fades (a dissolve splits
    its shots at its middle and its borders are crossfaded when decoded: :class:`.transitions.BorderBlend`), in
    the same pass over the frames as the encoding, and the plan follows them; ``transitions`` found before
    (M3DDM Outpaint Canvas) come with their ``cuts``.
    ``content`` identifies the frames for the resume key (a file's identity); ``resumable`` with a frame batch and
    no ``content``: the batch's hash does. ``on_chunk(frames done)`` reports the encoding. ``groups``: returning
    camera set-ups share their global frames and their seed -- for each shot, the first shot of its set-up, or
    ``"auto"``: grouped by :class:`.setups.ShotGrouper` in the same pass over the frames (None: each shot its
    own; or the text a user writes, :func:`.inputs.parse_setups`)."""
    if resumable and content is None:
        if not isinstance(frames, torch.Tensor):
            raise ValueError("prepare(resumable=True) hashes a frame batch; give an iterator's identity as content")
        content = content_hash(frames)
    if isinstance(groups, str):  # as a user writes them: auto, none, or a label per shot (A B A)
        groups = parse_setups(groups)

    def seeds_for(cuts: Sequence[int]) -> Optional[Mapping[int, int]]:  # text as a user writes it (2:1234)
        return parse_shot_seeds(shot_seeds, len(cuts) + 1) if isinstance(shot_seeds, str) else shot_seeds
    if isinstance(shot_seeds, str):
        parse_shot_seeds(shot_seeds, UNKNOWN_LENGTH)  # its form, before any frame is read
    auto = groups == "auto"
    found = detect_cuts or detect_transitions  # the shots are known once every frame is in
    plan = None if found else plan_video(num_frames, cuts, strides, schedule, seed, seeds_for(cuts),
                                         None if auto else groups)
    # one shot given: nothing to group (and M3DDM+ need not encode every frame's global-frame image)
    grouping = auto and (found or bool(cuts))
    reader = EditReader(None if detect_cuts else cuts, detect_transitions, grouping) if found or grouping else None
    if reader is not None:
        frames = reader.watching(frames)
    setups = reader.groups if grouping else None if auto else groups
    encoded = encode_video(frames, num_frames, canvas, encode, reader.cuts if found else plan.cuts,
                           global_latents, on_chunk=on_chunk, groups=setups)
    if plan is None or grouping:  # given set-ups with found cuts: their count is checked here
        plan = plan_video(num_frames, encoded.cuts, strides, schedule, seed, seeds_for(encoded.cuts),
                          setups() if callable(setups) else setups)
    transitions = tuple(reader.transitions()) if detect_transitions else tuple(transitions)
    return PreparedVideo(encoded, plan, settings, float(fps), content, transitions)


@dataclass
class Outpainted:
    """What :func:`sample` gives: ``latents`` ``[k, 4, h, w]`` of ``frames`` (video numbering; every frame when
    ``complete``, else those a subset of passes wrote), their decoded working canvases ``[k, ch, cw, 3]`` float
    0..1 (None without a decoder; the whole video's with the borders of its transitions blended, the latents as
    sampled), the passes loaded from the store and those sampled (plan indexes), and the store's key."""

    latents: torch.Tensor
    frames: list[int]
    canvases: Optional[torch.Tensor] = None
    resumed: list[int] = field(default_factory=list)
    sampled: list[int] = field(default_factory=list)
    store_key: Optional[str] = None
    complete: bool = True


def sample(video: PreparedVideo, runtime: Runtime, *, only: Optional[Sequence[PlannedPass]] = None,
           overrides: Optional[Mapping[int, torch.Tensor]] = None, decode: Optional[DecodeFn] = None,
           decode_batch: int = CLIP_FRAMES, keep_store: bool = False) -> Outpainted:
    """Sample the plan of ``video`` -- every pass, or ``only`` those (with the passes they depend on among them,
    e.g. :meth:`.plan.VideoPlan.preview_passes`) -- on the model ``runtime`` places, then decode.

    Passes found in the run's store are loaded instead of sampled and every sampled pass is saved there, so a run
    stopped by an error, an interruption or a crash resumes with what remains, and a later :func:`sample` of the
    whole plan samples only what ``only`` left. ``overrides`` (frame -> latent: an edited key frame) replace what a
    pass writes for those frames, so every later pass is guided by them. The store is cleared once the whole
    result exists and is decoded, unless ``keep_store`` (the caller clears it once its file is written)."""
    plan = video.plan
    if only is not None and (not only or overrides):
        raise ValueError("sample(only=...) takes at least one pass and no overrides (edits apply to a whole run)")
    model, settings = runtime.place_model(video.settings, video.encoded.plan.latent_hw)
    key = video.store_key(model, settings)
    store = runtime.store(key)
    chosen = plan.passes if only is None else list(only)
    done = {i for i in (store.done() if store is not None else []) if i < len(plan)} & {p.index for p in chosen}
    if done:
        log.info("[%s] resuming an interrupted run: %d of %d passes are done (%s)", runtime.name, len(done),
                 len(chosen), store.dir)
    callback = runtime.progress(max(1, len(chosen) * settings.steps), len(done) * settings.steps, model)
    if only is None:
        result = run_plan(model, video.encoded, plan, video.fps, settings, store, callback, runtime.check_interrupt,
                          clear_store=False, overrides=dict(overrides or {}))
        latents, frames, resumed, sampled = result.latents, list(range(plan.num_frames)), result.resumed, \
            result.sampled
    else:
        written = run_passes(model, video.encoded, plan, [p.index for p in chosen], video.fps, settings, store,
                             callback, runtime.check_interrupt)
        frames = sorted(written)
        latents = torch.stack([written[f] for f in frames])
        resumed, sampled = sorted(done), sorted({p.index for p in chosen} - done)
    canvases = None if decode is None else decode_latents(decode, latents, decode_batch)
    if canvases is not None and only is None and video.transitions:  # the whole video: borders of transitions
        blend = BorderBlend(video.transitions, len(canvases), lambda f: canvases[f].clone())
        canvases = torch.stack([blend(f, c) for f, c in enumerate(canvases)])
    if store is not None and only is None and not keep_store:
        store.clear()
    log.info("[%s] sampled %d of %d passes (%d resumed)", runtime.name, len(sampled), len(chosen), len(resumed))
    return Outpainted(latents, frames, canvases, list(resumed), list(sampled), key, complete=only is None)


def outpaint_clip(frames: torch.Tensor, indexes: Union[Sequence[int], str], canvas: CanvasPlan, encode: EncodeFn,
                  runtime: Runtime, settings: SampleSettings, fps: float, seed: int = 0,
                  guides: Optional[Mapping[int, torch.Tensor]] = None, global_latents: Optional[torch.Tensor] = None,
                  decode: Optional[DecodeFn] = None) -> Outpainted:
    """One hand-picked clip (M3DDM Sample Clip): frames ``indexes`` (up to 16, a repeat pads; or the text a user
    writes, ``0-15`` or ``0,15,30``: :func:`.inputs.parse_frame_indexes`) of ``frames`` ``[N, H, W, 3]``, those in
    ``guides`` (frame -> scaled latent ``[4, h, w]`` from an earlier clip) kept as guide frames. Only the
    clip's frames are encoded -- before the model is placed, so the VAE's work never shares the device with the
    UNet -- and the pass draws the noise of a shot seeded ``seed``. ``global_latents``: the whole video's 16 global
    frames (else the clip's own)."""
    if isinstance(indexes, str):
        indexes = parse_frame_indexes(indexes, int(frames.shape[0]))
    guides = dict(guides or {})
    for f, latent in guides.items():
        if tuple(latent.shape) != (4, *canvas.latent_hw):
            raise ValueError(f"the guide latent of frame {f} has shape {tuple(latent.shape)}; this canvas needs [4, "
                             f"{canvas.latent_hw[0]}, {canvas.latent_hw[1]}] -- it was made for another canvas")
        if not 0 <= f < frames.shape[0]:
            raise ValueError(f"a guide refers to frame {f}, but the video has {frames.shape[0]} frames")
    clip = clip_pass(indexes, guides)
    distinct = list(clip.distinct_frames)
    local = {f: i for i, f in enumerate(distinct)}  # the clip's frames as a video of their own
    encoded = encode_video(frames[distinct], len(distinct), canvas, encode, global_latents=global_latents)
    local_pass = Pass.make([local[f] for f in clip.frames], clip.is_guide, clip.stride)
    model, settings = runtime.place_model(settings, canvas.latent_hw)
    out = run_pass(model, prepare_shot(model, encoded), local_pass,
                   {local[f]: t for f, t in guides.items() if f in local}, fps, settings, seed, 0,
                   runtime.progress(settings.steps, 0, model), runtime.check_interrupt)
    latents = torch.stack(list(out.values()))
    canvases = None if decode is None else decode_latents(decode, latents)
    return Outpainted(latents, [distinct[i] for i in out], canvases, sampled=[0], complete=False)


def encode_edits(edited: torch.Tensor, shown: torch.Tensor, frames: Sequence[int], canvas: CanvasPlan,
                 canvases: torch.Tensor, encode: EncodeFn, tolerance: float = 1.0 / 255) -> dict[int, torch.Tensor]:
    """The key frames a user changed, as latents for :func:`sample`'s ``overrides``: ``edited`` and ``shown``
    ``[K, OH, OW, 3]`` float 0..1 (the composited key ``frames`` as previewed, and as given back), ``canvases``
    ``[K, ch, cw, 3]`` their working canvases. A frame that differs from what was shown by more than ``tolerance``
    is brought back onto its working canvas (:func:`.composite.output_to_canvas`) and encoded; the others are
    kept as sampled."""
    out = {}
    for i, frame in enumerate(frames):
        if (edited[i] - shown[i]).abs().max() > tolerance:
            out[int(frame)] = encode(output_to_canvas(edited[i], canvas, canvases[i])[None])[0].float().cpu()
    return out


@dataclass
class OutpaintResult:
    canvases: Optional[torch.Tensor]  # [N, ch, cw, 3] float 0..1, the generated canvases (None: decode=None)
    latents: torch.Tensor  # [N, 4, h, w] final latents per frame
    passes: list  # the plan's passes (schedule.Pass), numbered in the video's frames
    encoded_images: int
    denoising_steps: int  # sampled passes x steps (each step is one UNet call, or one per branch when sequential)
    resumed_passes: list[int] = field(default_factory=list)  # passes loaded from the store instead of sampled


def outpaint_video(model, frames: Iterable, plan: CanvasPlan, encode: Optional[EncodeFn],
                   decode: Optional[DecodeFn], fps: float, settings: SampleSettings = SampleSettings(),
                   strides: Strides = "auto", schedule: str = "fixed", seed: int = 0,
                   callback: Optional[StepCallback] = None, check_interrupt: Optional[Callable[[], None]] = None,
                   encoded: Optional[EncodedVideo] = None, decode_batch: int = CLIP_FRAMES,
                   store: Optional[PassStore] = None, cuts: Sequence[int] = ()) -> OutpaintResult:
    """:func:`prepare` and :func:`sample` with a model already placed, for frames in memory (``[N, H, W, 3]``,
    uint8 or float 0..1) or an ``encoded`` video (which brings its own cuts; ``frames`` then only counts them).
    ``store`` makes it resumable whatever the frames are: it is used as given."""
    n = len(frames)
    if encoded is None:
        video = prepare(frames, n, plan, encode, settings, fps, seed=seed, strides=strides, schedule=schedule,
                        cuts=cuts)
    else:
        video = PreparedVideo(encoded, plan_video(n, encoded.cuts, strides, schedule, seed), settings, float(fps))
    result = sample(video, Runtime.fixed(model, store, callback, check_interrupt), decode=decode,
                    decode_batch=decode_batch)
    return OutpaintResult(result.canvases, result.latents, [p.in_video for p in video.plan.passes],
                          video.encoded.encoded_images, len(result.sampled) * settings.steps, result.resumed)
