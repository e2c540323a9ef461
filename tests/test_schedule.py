"""Coarse-to-fine schedules: the official one reproduced, the default one fixed."""
import json

import pytest

from conftest import DATA
from reference import official_window_schedule
from m3ddm_core.pipeline.schedule import Pass, auto_strides, clip_pass, clip_stride, plan_passes, plan_schedule

RECORDED = json.loads((DATA / "window_schedule.json").read_text())
KEYS = ("stride", "frames", "is_guide")


@pytest.mark.parametrize("n", sorted(RECORDED, key=int))
def test_official_passes_equal_the_recording(n):
    got = official_window_schedule(int(n))
    want = RECORDED[n]["passes"]
    assert [{k: list(getattr(p, k)) if k != "stride" else p.stride for k in KEYS} for p in got] == \
        [{k: p[k] for k in KEYS} for p in want]
    assert [list(p.official_saved_as) for p in got] == [p["saved_as"] for p in want]


@pytest.mark.parametrize("n", [1, 2, 7, 15, 16, 17, 31, 49, 50, 51, 100, 101, 226, 227, 450, 1000])
def test_default_schedule_generates_every_frame_once_and_nothing_past_the_end(n):
    passes = plan_schedule(n)
    written = [f for p in passes for _, f in p.writes]
    assert sorted(written) == list(range(n))  # every frame exactly once
    assert all(0 <= f < n for p in passes for f in p.frames)
    assert all(len(p.frames) == len(p.is_guide) == 16 for p in passes)
    generated = set()
    for p in passes:  # a guide is always a frame an earlier pass generated
        for f, g in zip(p.frames, p.is_guide):
            assert g == (f in generated)
        assert all(p.frames[pos] == f and not p.is_guide[pos] for pos, f in p.writes)
        assert clip_stride(p.frames) == p.stride  # the Sample Clip rule gives every scheduled pass its stride
        generated.update(p.frames)


def test_official_bugs_are_what_the_default_fixes():
    assert official_window_schedule(1) == []  # the official code outputs nothing for 1 frame
    assert max(max(p.official_saved_as) for p in official_window_schedule(50)) == 225  # writes past the end
    assert plan_schedule(1)[0].frames == (0,) * 16


@pytest.mark.parametrize("strides", [[30, 15, 1], [15, 5, 1], [5, 3, 1], [1], "15,5,1"])
def test_configurable_strides(strides):
    passes = plan_schedule(300, strides)
    levels = [int(s) for s in strides.split(",")] if isinstance(strides, str) else strides
    assert [p.stride for p in passes] == sorted((p.stride for p in passes), reverse=True)
    assert {p.stride for p in passes} == set(levels)
    assert sorted(f for p in passes for _, f in p.writes) == list(range(300))


def test_auto_strides_by_length():
    assert auto_strides(16) == [1] and auto_strides(49) == [1]
    assert auto_strides(50) == [15, 5, 1] and auto_strides(226) == [15, 5, 1]
    assert auto_strides(450) == [30, 15, 1]


@pytest.mark.parametrize("bad", ["15,5", "0,1", "5,15,1", "a,b", [2]])
def test_bad_strides_are_explained(bad):
    with pytest.raises(ValueError, match="strides"):
        plan_schedule(100, bad)


def test_zero_frames():
    with pytest.raises(ValueError, match="no frames"):
        plan_schedule(0)


def test_official_schedule_mode_refuses_frames_it_never_generates():
    assert len(plan_passes(17, schedule="official")) == 2
    with pytest.raises(ValueError, match="never generates frames"):
        plan_passes(1, schedule="official")
    with pytest.raises(ValueError, match="unknown"):
        plan_passes(10, schedule="dense")


@pytest.mark.parametrize("frames, stride", [
    (list(range(16)), 1),                      # a range
    (list(range(0, 226, 15)), 15),             # key frames
    (list(range(0, 91, 15)) + [99], 15),       # regular, ending on a nearer last frame
    ([30, 0, 15], 15),                         # order does not matter
    ([4] * 16, 1),                             # a single distinct frame
    ([0, 1, 2, 10], 8),                        # irregular: the largest gap
])
def test_clip_stride_is_the_largest_gap_between_distinct_indexes(frames, stride):
    assert clip_stride(frames) == stride


def test_clip_pass_marks_guides_writes_first_occurrences_and_conditions_on_fps_over_stride():
    p = clip_pass([0, 15, 30, 45, 45, 45], guide_frames={15, 99})
    assert p.is_guide == (False, True, False, False, False, False) and p.stride == 15
    assert p.writes == ((0, 0), (2, 30), (3, 45)) and p.guide_frames == (15,)
    assert p.distinct_frames == (0, 15, 30, 45)
    assert p.fps(24.0) == 1 and p.fps(29.97) == 1 and clip_pass(range(16)).fps(29.97) == 29
    with pytest.raises(ValueError, match="guide flags"):
        Pass.make([0, 1], [False], 1)
