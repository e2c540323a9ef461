"""m3ddm_core.pipeline.executors: independent passes of a video sampled together (batched passes) give what one
after another gives, and the batching is decided by the traced memory."""
import dataclasses

import pytest
import torch

from conftest import MICRO_CONFIG, NANO_CONFIG
from helpers import TinyVAE, load_clip
from m3ddm_core import SampleSettings, encode_video, plan_video, resume_key, run_plan, sampling_memory
from m3ddm_core.pipeline.executors import (MAX_PASSES_PER_CALL, PlanRun, choose_branching, default_max_passes,
                                           pass_groups)

# Three guidance branches, two PNDM steps: the batched UNet input interleaves clips and branches.
SETTINGS = SampleSettings(steps=2)
SEED = 3
FRAMES, CUTS, STRIDES = 64, [30, 58], "15,5,1"  # three shots, the last one 6 frames (shorter clips)


@pytest.fixture(scope="module")
def nano_model():
    """A seeded random nano UNet: batching is plumbing, the weights' size does not matter to it."""
    from m3ddm_core import build_unet
    torch.manual_seed(0)
    return build_unet(NANO_CONFIG)


@pytest.fixture(scope="module")
def encoded(plan):
    return encode_video(load_clip(FRAMES), FRAMES, plan, TinyVAE().encode, cuts=CUTS)


@pytest.fixture(scope="module")
def video_plan():
    return plan_video(FRAMES, CUTS, STRIDES, seed=SEED)


@pytest.fixture(scope="module")
def sequential_run(nano_model, encoded, video_plan):
    order = []
    result = run_plan(nano_model, encoded, video_plan, 16.0, SETTINGS,
                      on_pass=lambda p, resumed: order.append(p.index))
    return result.latents, order


@pytest.fixture(scope="module")
def one_by_one(sequential_run):
    return sequential_run[0]


class UNetCalls:
    """Records each UNet call's batch size and fps values."""

    def __init__(self, model):
        self.calls: list[tuple[int, list[int]]] = []
        self.handle = model.register_forward_pre_hook(self._record)

    def _record(self, module, args):
        sample, _, fps = args[:3]
        rates = torch.as_tensor(fps).reshape(-1).expand(sample.shape[0]).tolist()
        self.calls.append((sample.shape[0], rates))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("k", [2, 3])
def test_batched_passes_equal_one_after_another(nano_model, encoded, video_plan, one_by_one, k):
    """k ready passes per UNet call (guides, three shots, clips of 16 and of 6 frames, strides 15/5/1 mixed in a
    call) give the sequential run's latents within 1e-5 relative in fp32, and really were batched."""
    steps_before = []
    with UNetCalls(nano_model) as unet:
        result = run_plan(nano_model, encoded, video_plan, 16.0, dataclasses.replace(SETTINGS, passes_per_call=k),
                          callback=lambda info: steps_before.append((info["pass"], info["i"])))
    assert relative_error(result.latents, one_by_one) <= 1e-5  # bit-equal or not: the kernels' rounding decides
    branches = 3
    sizes = [b for b, _ in unet.calls]
    assert max(sizes) == k * branches and len(sizes) < len(video_plan) * SETTINGS.steps
    if k == 3:  # shot 3's dense pass joins the others' stride-5 passes: two rates in one call
        assert any(len(set(rates)) > 1 for _, rates in unet.calls)
    assert sorted(result.sampled) == list(range(len(video_plan)))
    # every pass reported each of its steps
    assert sorted(steps_before) == sorted((p, i) for p in range(len(video_plan)) for i in range(SETTINGS.steps))


def test_batched_sequential_branches_equal_one_after_another(nano_model, encoded, video_plan, one_by_one):
    """The low-VRAM branch order with several passes per call (one call per branch over the passes)."""
    settings = dataclasses.replace(SETTINGS, passes_per_call=2, sequential=True)
    with UNetCalls(nano_model) as unet:
        result = run_plan(nano_model, encoded, video_plan, 16.0, settings)
    assert relative_error(result.latents, one_by_one) <= 1e-5
    assert max(b for b, _ in unet.calls) == 2


def test_one_pass_per_call_is_the_plan_order_run(video_plan, sequential_run):
    """passes_per_call=1 (the default) samples in plan order, one pass per call -- the order the recordings
    (tests/test_recordings.py) were made in."""
    assert SETTINGS.passes_per_call == 1 and sequential_run[1] == list(range(len(video_plan)))


def test_the_first_ready_group_takes_ready_passes_of_one_frame_count(video_plan):
    run = PlanRun(video_plan)
    ready = run.ready(claim=False)
    first = pass_groups(ready, 8)[0]
    assert [p.index for p in first] == [p.index for p in video_plan.passes if not p.depends]
    assert len({p.shot for p in first}) == 3  # every shot's first key-frame pass is ready at once
    assert len({len(p.clip.frames) for p in first}) == 1
    assert pass_groups(ready, 1)[0] == [video_plan.passes[0]]
    assert run.ready() == ready and run.ready() == []  # claimed: handed out once
    run.done = {p.index for p in video_plan.passes}
    assert PlanRun(video_plan).ready(claim=False) and run.ready(claim=False) == []
    groups = pass_groups(video_plan.passes, 3)
    flat = [p for g in groups for p in g]
    for count in {len(p.clip.frames) for p in video_plan.passes}:  # each frame count keeps the plan's order
        assert [p for p in flat if len(p.clip.frames) == count] == \
            [p for p in video_plan.passes if len(p.clip.frames) == count]
    assert all(len(g) <= 3 and len({len(p.clip.frames) for p in g}) == 1 for g in groups)
    assert sorted(p.index for g in groups for p in g) == list(range(len(video_plan)))


def test_the_resume_key_ignores_how_passes_are_batched_and_reads_the_plan(micro_model, encoded, video_plan):
    keys = {resume_key("clip", encoded, micro_model, dataclasses.replace(SETTINGS, passes_per_call=k, sequential=s),
                       16.0, video_plan) for k in (1, 4) for s in (False, True)}
    assert len(keys) == 1
    # the plan carries the seeds: another seed, a re-rolled shot, other strides -- each another run
    others = [plan_video(FRAMES, CUTS, STRIDES, seed=SEED + 1), plan_video(FRAMES, CUTS, STRIDES, seed=SEED,
                                                                           shot_seeds={1: 99}),
              plan_video(FRAMES, CUTS, "auto", seed=SEED)]
    assert [p.passes != video_plan.passes for p in others] == [True] * 3
    assert not {resume_key("clip", encoded, micro_model, SETTINGS, 16.0, p) for p in others} & keys


def test_passes_per_call_follow_the_traced_memory(micro_model):
    """The most passes whose traced activations (times the margin) fit; none fit: one pass, branches one after
    another; the CPU (no free-memory figure) takes the cap as given; low_vram keeps one pass."""
    hw = (16, 16)
    mem = {k: sampling_memory(MICRO_CONFIG, torch.float32, 3, False, 16, hw, passes=k).activations for k in (1, 2, 3, 4)}
    assert mem[1] < mem[2] < mem[3] < mem[4]
    assert 1.6 < mem[2] / mem[1] < 2.1  # activations grow with the batch; weights are read once
    pick = lambda free, limit=4, s=SETTINGS: choose_branching(micro_model, s, hw, free, max_passes=limit)  # noqa: E731
    assert pick(int(mem[4] * 1.31)).passes_per_call == 4
    assert pick(int(mem[3] * 1.31)).passes_per_call == 3
    assert pick(int(mem[4] * 1.31), limit=2).passes_per_call == 2
    tight = pick(int(mem[1] * 1.2))
    assert tight.passes_per_call == 1 and tight.sequential
    assert pick(None, limit=3).passes_per_call == 3 and not pick(None, limit=3).sequential
    low = pick(int(mem[4] * 2), s=dataclasses.replace(SETTINGS, sequential=True))
    assert low.passes_per_call == 1 and low.sequential
    assert default_max_passes(torch.device("cpu")) == 1 and default_max_passes(torch.device("cuda")) == MAX_PASSES_PER_CALL
