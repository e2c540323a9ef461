"""Whole-video outpainting on a real clip: frame count, encode budget, determinism, interrupts, composite."""
from pathlib import Path

import pytest
import torch

from helpers import TinyVAE, load_clip
from m3ddm_core import SampleSettings, composite, encode_video, outpaint_video
from m3ddm_core.pipeline.executors import PlanRun
from m3ddm_core.pipeline.plan import pass_dependencies, plan_video
from m3ddm_core.pipeline.schedule import plan_passes
from m3ddm_core.pipeline.passes import prepare_shot, run_pass

FAST = SampleSettings(steps=1, s1=1.0, s2=1.0)  # one branch, one step: the plumbing, not the quality
SEED = 1


def _run(model, frames, plan, settings=FAST, seed=SEED, **kw):
    vae = TinyVAE()
    result = outpaint_video(model, frames, plan, vae.encode, vae.decode, fps=16.0, settings=settings, seed=seed, **kw)
    return result, vae


@pytest.mark.parametrize("n", [1, 7, 16, 17, 50, 101])
def test_frame_count_preserved_and_encodes_bounded(micro_model, plan, n):
    frames = load_clip(n)
    result, vae = _run(micro_model, frames, plan)
    assert result.canvases.shape == (n, 128, 128, 3) and result.latents.shape == (n, 4, 16, 16)
    assert vae.encoded_images == result.encoded_images <= 2 * n + 16 + 1
    assert vae.encoded_images <= 2 * n + 1  # global frames reuse the masked-canvas latents
    out = composite(frames, result.canvases, plan)
    assert out.shape == (n, *plan.output_hw, 3)
    y, x = plan.content_out_yx
    assert torch.equal(out[:, y:y + 120, x:x + 208], frames)  # original pixels bit-exact


def test_same_seed_same_video_other_seed_other_video(micro_model, plan):
    frames = load_clip(20)
    a, _ = _run(micro_model, frames, plan)
    b, _ = _run(micro_model, frames, plan)
    c, _ = _run(micro_model, frames, plan, seed=2)
    assert torch.equal(a.canvases, b.canvases)
    assert not torch.equal(a.canvases, c.canvases)


def test_official_schedule_mode(micro_model, plan):
    frames = load_clip(17)
    result, _ = _run(micro_model, frames, plan, schedule="official")
    assert len(result.passes) == 2 and result.canvases.shape[0] == 17
    with pytest.raises(ValueError, match="never generates frames"):
        _run(micro_model, load_clip(1), plan, schedule="official")


class Stop(Exception):
    pass


@pytest.mark.parametrize("stop_at", [0, 2])  # first window, and the last of 3 (1 step per window)
def test_interrupt_raises_and_leaves_nothing_behind(micro_model, plan, stop_at):
    frames = load_clip(40)
    reference, _ = _run(micro_model, frames, plan)
    before = {k: v.clone() for k, v in micro_model.state_dict().items()}
    frames_before = frames.clone()
    calls = []

    def check():
        if len(calls) == stop_at:
            raise Stop()
        calls.append(1)

    with pytest.raises(Stop):
        _run(micro_model, frames, plan, check_interrupt=check)
    assert all(torch.equal(before[k], v) for k, v in micro_model.state_dict().items())
    assert torch.equal(frames, frames_before)
    again, _ = _run(micro_model, frames, plan)
    assert torch.equal(again.canvases, reference.canvases)


def test_progress_callback_covers_passes_times_steps(micro_model, plan):
    seen = []
    result, _ = _run(micro_model, load_clip(40), plan, settings=SampleSettings(steps=2, s1=1.0, s2=1.0),
                     callback=seen.append)
    assert len(seen) == len(result.passes) * 2
    assert seen[-1]["pass"] == len(result.passes) - 1 and seen[-1]["passes"] == len(result.passes)


def test_guidance_defaults_run_end_to_end(micro_model, plan):
    result, _ = _run(micro_model, load_clip(16), plan, settings=SampleSettings(steps=2), seed=3)
    assert torch.isfinite(result.canvases).all()


def test_cached_latents_hold_no_autograd_graph(plan):
    """A caller outside inference mode (ComfyUI's server runs nodes in it, scripts may not) with a VAE whose
    weights track gradients: the cache must keep plain latents, not every encoder activation of their graph."""
    conv = torch.nn.Conv2d(3, 4, 8, stride=8)  # requires_grad weights
    encode = lambda pixels: conv(pixels.permute(0, 3, 1, 2))  # noqa: E731
    encoded = encode_video(load_clip(3), 3, plan, encode)
    latents = [*encoded.prefilled, *encoded.masked, encoded.uncond, *encoded.global_latents]
    assert len(latents) == 8 and all(t.grad_fn is None and not t.requires_grad for t in latents)


def test_canvases_built_on_threads_equal_the_serial_ones_in_order(plan):
    import numpy as np

    from m3ddm_core.pipeline.canvas import build_canvas
    from m3ddm_core.pipeline.encode import build_canvases
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (120, 208, 3), dtype=np.uint8) for _ in range(6)]
    threaded = build_canvases(frames, plan, workers=4)
    assert len(threaded) == len(frames)
    for frame, (prefilled, masked) in zip(frames, threaded):
        ref_p, ref_m = build_canvas(frame, plan)
        assert np.array_equal(prefilled, ref_p) and np.array_equal(masked, ref_m)


def _critical_path(plan) -> int:
    """The scale-out benchmark's figure (benchmarks/scale_out.py): passes on the longest chain of dependencies."""
    import importlib.util
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "scale_out.py"
    spec = importlib.util.spec_from_file_location("scale_out_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.critical_path(plan)


def test_the_dependencies_of_a_schedule_let_finer_levels_fan_out():
    passes = plan_passes(64, "15,5,1")
    deps = pass_dependencies(passes)
    assert deps[0] == set() and all(deps[k] for k in range(1, len(passes)))
    dense = [k for k, p in enumerate(passes) if p.stride == 1]
    # the dense windows wait only on the coarser levels, except the last one, moved back to end on frame 63,
    # which starts on a frame its neighbour makes
    assert len(dense) == 5 and all(deps[k] <= set(range(dense[0])) for k in dense[:-1])
    assert deps[dense[-1]] == {0, 1, dense[-2]}
    assert _critical_path(plan_video(64, (), "15,5,1")) == 4
    # a guide made by a pass is always a dependency: every guide frame is written by one of the pass's deps
    for k, p in enumerate(passes):
        made = {f for d in deps[k] for _, f in passes[d].writes}
        assert set(p.guide_frames) <= made
    # 450 frames at 30,15,1: the sparsest level chains, the rest fans out
    big = plan_passes(450, "auto")
    assert (len(big), _critical_path(plan_video(450))) == (33, 5)
    # the plan's dependencies are the schedule's, numbered in the plan
    assert [set(p.depends) for p in plan_video(64, (), "15,5,1").passes] == deps


def test_passes_run_in_any_order_their_dependencies_allow_give_the_same_video(micro_model, plan):
    """What a scale-out relies on: a pass needs only its guides, so running the ready passes last-first (as
    another worker might) -- on an encoded video sent through pickle, as Ray ships it -- equals the plan-order
    run."""
    import pickle
    frames = load_clip(64)
    reference, vae = _run(micro_model, frames, plan, strides="15,5,1")
    encoded = pickle.loads(pickle.dumps(encode_video(frames, 64, plan, vae.encode)))
    shot = prepare_shot(micro_model, encoded)
    run = PlanRun(plan_video(64, (), "15,5,1", seed=SEED))
    order = []
    while not run.complete:
        for p in reversed(run.ready()):
            run.finish(p, run_pass(micro_model, shot, p.clip, run.guides(p), 16.0, FAST, p.seed, p.noise_index))
            order.append(p.index)
    assert order != sorted(order)  # the order really differed
    assert torch.equal(run.result(), reference.latents)


def test_passes_sampled_again_change_only_their_frames_and_their_dependents(micro_model, plan):
    """A re-render: a pass of a finished run sampled with another seed changes the frames it writes and those of
    every pass that depends on it (their guides changed), nothing else; with its own seed, nothing changes."""
    from m3ddm_core.pipeline.executors import dependents, rerun_passes
    from m3ddm_core.pipeline.seeds import RERENDER, derive_seed
    frames = load_clip(64)
    vae = TinyVAE()
    encoded = encode_video(frames, 64, plan, vae.encode)
    vp = plan_video(64, (), "15,5,1", seed=SEED)
    reference = _run(micro_model, frames, plan, strides="15,5,1")[0].latents
    same, sampled = rerun_passes(micro_model, encoded, vp, reference, 16.0, FAST, {4: vp.passes[4].seed})
    assert torch.equal(same, reference) and sampled == sorted(dependents(vp, [4]))
    dense = [p.index for p in vp.passes if p.clip.stride == 1]
    k = dense[-2]  # the last dense window starts on a frame this one makes: one dependent
    assert dependents(vp, [k]) == {k, dense[-1]}
    new, sampled = rerun_passes(micro_model, encoded, vp, reference, 16.0, FAST, {k: derive_seed(vp.passes[k].seed, RERENDER, 1)})
    assert sampled == [k, dense[-1]]
    changed = {i for i in range(64) if not torch.equal(new[i], reference[i])}
    written = {f for i in sampled for _, f in vp.passes[i].in_video.writes}
    assert changed and changed <= written and changed & {f for _, f in vp.passes[k].in_video.writes}


def test_key_frames_first_then_the_rest_equals_one_run(micro_model, plan, tmp_path):
    """Preview then continue: the first level sampled alone into a pass store, then the whole plan with that store,
    gives one uninterrupted run's latents bit for bit, sampling only the passes the preview did not; a re-rolled
    shot changes that shot only."""
    from m3ddm_core import PassStore
    from m3ddm_core.pipeline.executors import run_passes, run_plan
    frames = load_clip(64)
    vae = TinyVAE()
    encoded = encode_video(frames, 64, plan, vae.encode, cuts=[30])
    vp = plan_video(64, [30], "15,5,1", seed=SEED)
    first = vp.first_level()
    assert {p.clip.stride for p in first} == {15} and {p.shot for p in first} == {0, 1}
    assert all(p.depends <= {q.index for q in first} for p in first)
    assert vp.key_frames() == sorted({f for p in first for _, f in p.in_video.writes}) and 0 in vp.key_frames()
    whole = run_plan(micro_model, encoded, vp, 16.0, FAST)
    store = PassStore(tmp_path, "preview")
    keys = run_passes(micro_model, encoded, vp, [p.index for p in first], 16.0, FAST, store)
    assert sorted(keys) == vp.key_frames() and all(torch.equal(keys[f], whole.latents[f]) for f in keys)
    assert store.done() == sorted(p.index for p in first)
    rest = run_plan(micro_model, encoded, vp, 16.0, FAST, store)
    assert torch.equal(rest.latents, whole.latents)
    assert rest.resumed == [p.index for p in first] and sorted(rest.sampled + rest.resumed) == list(range(len(vp)))
    second = next(p for p in vp.passes if p.clip.stride == 5)
    with pytest.raises(ValueError, match="needed as guides"):  # its key frames are not among the passes asked for
        run_passes(micro_model, encoded, vp, [second.index], 16.0, FAST)
    # a re-roll of shot 2: its seed, its frames; shot 1 as before
    reroll = plan_video(64, [30], "15,5,1", seed=SEED, shot_seeds={1: 99})
    assert {p.seed for p in reroll.passes if p.shot == 1} == {99}
    rerolled = run_plan(micro_model, encoded, reroll, 16.0, FAST)
    assert torch.equal(rerolled.latents[:30], whole.latents[:30])
    assert not torch.equal(rerolled.latents[30:], whole.latents[30:])


def test_a_preview_never_costs_the_whole_render(micro_model, plan, tmp_path):
    """A short shot's sparsest level is every frame (33 frames at the automatic strides: 3 stride-1 passes): its
    preview is its first pass instead, and preview + the rest still equals one run. Longer videos preview their
    first level, as before (and a video mixing both is previewed shot by shot)."""
    from m3ddm_core import PassStore
    from m3ddm_core.pipeline.executors import run_passes, run_plan
    short = plan_video(33, [], "auto", seed=SEED)
    assert len(short.first_level()) == len(short) == 3
    assert [p.index for p in short.preview_passes()] == [0] and short.key_frames() == list(range(16))
    longer = plan_video(120, [], "auto", seed=SEED)
    assert short.preview_passes() != short.first_level() and longer.preview_passes() == longer.first_level()
    assert len(longer.preview_passes()) < len(longer)
    mixed = plan_video(153, [33], "auto", seed=SEED)  # a 33-frame shot, then 120 frames
    assert [p.shot for p in mixed.preview_passes()] == [0, 1]
    frames = load_clip(33)
    vae = TinyVAE()
    encoded = encode_video(frames, 33, plan, vae.encode)
    whole = run_plan(micro_model, encoded, short, 16.0, FAST)
    store = PassStore(tmp_path, "short-preview")
    keys = run_passes(micro_model, encoded, short, [0], 16.0, FAST, store)
    assert all(torch.equal(keys[f], whole.latents[f]) for f in range(16))
    rest = run_plan(micro_model, encoded, short, 16.0, FAST, store)
    assert torch.equal(rest.latents, whole.latents) and rest.resumed == [0] and sorted(rest.sampled) == [1, 2]
