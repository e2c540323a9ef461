"""Returning camera set-ups (issue 33): shots of one set-up (an interview's A -> B -> A') share their global frames
and their seed, through the plan (pipeline/plan.py), the encoding (pipeline/encode.py) and the entry
(pipeline/outpaint.py); without set-ups every shot keeps its own, as before."""
import pytest
import torch

import numpy as np

from constructed_edits import H, W, all_edits, interview_edits
from helpers import TinyVAE, load_clip
from m3ddm_core import (SampleSettings, ShotError, global_frame_indexes, parse_setups, plan_canvas, plan_video,
                        prepare, resolve_edit, setup_labels)
from m3ddm_core.pipeline.encode import shot_global_frames
from m3ddm_core.pipeline.shots import CutDetector

FAST = SampleSettings(steps=1, s1=1.0, s2=1.0)
CUTS = [20, 40]  # 60 frames: A 0-19, B 20-39, A' 40-59


def test_without_set_ups_each_shot_takes_its_global_frames_from_itself():
    bounds = [(0, 20), (20, 40), (40, 60)]
    expected = [[start + i for i in global_frame_indexes(end - start)] for start, end in bounds]
    assert shot_global_frames(60, CUTS) == expected == shot_global_frames(60, CUTS, [0, 1, 2])


def test_a_returning_set_up_takes_its_global_frames_from_all_of_its_shots():
    a, b, a2 = shot_global_frames(60, CUTS, [0, 1, 0])
    assert a == a2 and len(a) == 16
    assert a[0] == 0 and a[-1] == 59 and all(f < 20 or f >= 40 for f in a)  # spread over A and A', never B
    assert any(f < 20 for f in a) and any(f >= 40 for f in a)
    assert b == [20 + i for i in global_frame_indexes(20)]


@pytest.mark.parametrize("groups, message", [([0, 1], "2 set-up groups given for 3 shot"),
                                             ([0, 2, 2], "shot 2 returns to shot 3"),
                                             ([0, 1, 3], "shot 3 returns to shot 4"),
                                             ([1, 1, 1], "shot 1 returns to shot 2")])
def test_set_ups_that_do_not_fit_the_shots_say_what_is_wrong(groups, message):
    with pytest.raises(ShotError, match=message):
        plan_video(60, CUTS, "15,5,1", groups=groups)


def test_a_returning_set_up_samples_with_its_first_shots_seed():
    own = plan_video(60, CUTS, "15,5,1", seed=9)
    grouped = plan_video(60, CUTS, "15,5,1", seed=9, groups=[0, 1, 0])
    seeds = {p.shot: p.seed for p in grouped.passes}
    assert seeds[2] == seeds[0] != seeds[1] and seeds[1] == {p.shot: p.seed for p in own.passes}[1]
    assert [p.noise_seed for p in grouped.shot_passes(2)] == [p.noise_seed for p in grouped.shot_passes(0)]
    assert own.groups == (0, 1, 2) and grouped.groups == (0, 1, 0)
    rerolled = plan_video(60, CUTS, "15,5,1", seed=9, groups=[0, 1, 0], shot_seeds={0: 5})
    assert {p.shot: p.seed for p in rerolled.passes} == {0: 5, 1: seeds[1], 2: 5}  # a re-roll re-rolls the return
    apart = plan_video(60, CUTS, "15,5,1", seed=9, groups=[0, 1, 0], shot_seeds={2: 6})
    assert {p.shot: p.seed for p in apart.passes} == {0: seeds[0], 1: seeds[1], 2: 6}


def test_the_entry_encodes_one_set_of_global_frames_per_set_up(plan):
    frames = load_clip(60)
    vae = TinyVAE()
    plain = prepare(frames, 60, plan, vae.encode, FAST, 16.0, strides="15,5,1", cuts=CUTS)
    grouped = prepare(frames, 60, plan, vae.encode, FAST, 16.0, strides="15,5,1", cuts=CUTS, groups=[0, 1, 0])
    g = grouped.encoded.global_latents
    assert torch.equal(g[0], g[2]) and torch.equal(g[1], plain.encoded.global_latents[1])
    union = shot_global_frames(60, CUTS, [0, 1, 0])[0]
    assert torch.equal(g[0], torch.stack([plain.encoded.masked[i] for i in union]))  # M3DDM: the masked canvases
    assert torch.equal(grouped.encoded.masked, plain.encoded.masked)  # the clips' own conditioning is unchanged
    with pytest.raises(ShotError, match="3 set-up groups given for 1 shot"):  # checked once the cuts are found
        prepare(frames, 60, plan, vae.encode, FAST, 16.0, detect_cuts=True, groups=[0, 1, 0])


def test_m3ddm_plus_encodes_only_the_set_ups_global_frames_once_each(plan):
    import dataclasses

    plus = dataclasses.replace(plan, family="m3ddm_plus")
    frames, vae = load_clip(60), TinyVAE()
    grouped = prepare(frames, 60, plus, vae.encode, FAST, 16.0, strides="15,5,1", cuts=CUTS, groups=[0, 1, 0])
    g = grouped.encoded.global_latents
    assert torch.equal(g[0], g[2]) and not torch.equal(g[0], g[1])
    # two canvases per frame, the squashed frames of two sets of 16 (A+A', B), the black canvas
    assert vae.encoded_images == 2 * 60 + 32 + 1


def test_a_cut_is_known_within_the_detectors_latency():
    """What lets set-ups be grouped in the same pass as the cuts are found: no cut turns up before a frame the
    detector called settled, and none of those is dropped at the end."""
    for edit in all_edits((0,)) + interview_edits(0):
        detector = CutDetector()
        for frame in edit.frames:
            settled, known = detector.settled, len(detector.found())
            detector.feed(frame)
            assert all(c >= settled for c in detector.found()[known:]), edit.name
        final = detector.cuts()
        assert [c for c in detector.found() if c < detector.settled] == [c for c in final if c < detector.settled]


def _interview():
    edit = interview_edits(0)[0]
    return edit, torch.from_numpy(np.stack(edit.frames)), plan_canvas((H, W), ratio="9:16", canvas_size=128)


@pytest.mark.parametrize("family", ["m3ddm", "m3ddm_plus"])
def test_set_ups_are_grouped_in_the_same_pass_over_the_frames_as_the_cuts_are_found(family):
    """prepare(detect_cuts=True, groups="auto") reads a stream once and gives what the cuts and groups given by
    hand give: the plan, the seeds, every shot's global frames."""
    import dataclasses

    edit, frames, plan = _interview()
    plan = dataclasses.replace(plan, family=family)
    n, truth = len(edit.frames), tuple(edit.groups)
    args = (n, plan, TinyVAE().encode, FAST, 16.0)
    streamed = prepare(iter(edit.frames), *args, strides="15,5,1", detect_cuts=True, groups="auto")
    given = prepare(frames, *args, strides="15,5,1", cuts=edit.cuts, groups=list(truth))
    known_cuts = prepare(frames, *args, strides="15,5,1", cuts=edit.cuts, groups="auto")
    apart = prepare(frames, *args, strides="15,5,1", cuts=edit.cuts)
    assert streamed.plan.cuts == tuple(edit.cuts) and streamed.plan.groups == truth == known_cuts.plan.groups
    for video in (streamed, known_cuts):
        assert video.plan == given.plan
        for mine, theirs in zip(video.encoded.global_latents, given.encoded.global_latents):
            assert torch.equal(mine, theirs)
    assert apart.plan.groups == (0, 1, 2, 3, 4) and apart.plan != given.plan  # without: each shot its own


def test_auto_set_ups_of_unlike_shots_change_nothing():
    """Shots of different set-ups (and a single shot) come out of "auto" exactly as without set-ups."""
    edit, frames, plan = _interview()
    a, c = edit.cuts[0], edit.cuts[-1]
    frames = torch.cat([frames[:a], frames[c:]])  # set-ups A and C
    n, vae = len(frames), TinyVAE()
    for cuts in ([], [a]):
        plain = prepare(frames, n, plan, vae.encode, FAST, 16.0, strides="15,5,1", cuts=cuts)
        auto = prepare(frames, n, plan, vae.encode, FAST, 16.0, strides="15,5,1", cuts=cuts, groups="auto")
        assert auto.plan == plain.plan and auto.plan.groups == tuple(range(len(cuts) + 1))
        assert all(torch.equal(x, y) for x, y in zip(auto.encoded.global_latents, plain.encoded.global_latents))
        assert torch.equal(auto.encoded.prefilled, plain.encoded.prefilled)


def test_set_ups_as_a_user_writes_them():
    assert parse_setups("auto") == "auto" and parse_setups("") is None and parse_setups("None") is None
    assert parse_setups("A B A C") == [0, 1, 0, 3] == parse_setups("a, b, a, c", 4) == parse_setups("1;2;1;9")
    assert setup_labels([0, 1, 0, 3]) == "A B A C" and parse_setups(setup_labels([0, 1, 1, 0, 4])) == [0, 1, 1, 0, 4]
    with pytest.raises(ValueError, match="labels 2 shot\\(s\\), the video has 3: give one label per shot"):
        parse_setups("A B", 3)
    edit, frames, _ = _interview()
    cuts, n = ", ".join(map(str, edit.cuts)), len(frames)
    listed = resolve_edit("list", cuts, "auto", frames, n)
    assert listed.groups == tuple(edit.groups) and listed.cuts == tuple(edit.cuts)
    found = resolve_edit("detect", "", "auto", iter(frames), n)  # one pass: cuts, transitions and set-ups
    assert found.cuts == tuple(edit.cuts) and found.groups == tuple(edit.groups) and found.labels == "A B A B C"
    assert resolve_edit("none", "", "auto", frames, n).groups is None
    assert resolve_edit("list", cuts, "none", frames, n).groups is None
    assert resolve_edit("list", cuts, "A B C D A", frames, n).groups == (0, 1, 2, 3, 0)  # a user's split and join win
    with pytest.raises(ValueError, match="labels 2 shot"):
        resolve_edit("list", cuts, "A B", frames, n)


def test_set_up_similarity_compares_every_shift_and_every_kept_thumbnail_at_once():
    """The best normalised cross-correlation over shifts of up to 3 px, for many thumbnails in one call: a reframed
    copy scores 1 at its shift (on the overlap), a brightened one too, another picture little, a flat one 0."""
    from m3ddm_core.pipeline.setups import similarities

    rng = np.random.default_rng(5)
    a = rng.normal(size=(18, 32)).astype(np.float32)
    moved = np.zeros_like(a)
    moved[1:, :-2] = a[:-1, 2:]  # the picture moved 2 px left and 1 px down; the strip it left is black
    moved[0, :], moved[:, -2:] = rng.normal(size=32), rng.normal(size=(18, 2))
    others = np.stack([moved, 3 * a + 40, rng.normal(size=(18, 32)), np.full((18, 32), 7.0)])
    scores = similarities(a, others)
    assert scores[0] == pytest.approx(1.0, abs=1e-6) and scores[1] == pytest.approx(1.0, abs=1e-6)
    assert scores[2] < 0.5 and scores[3] == 0.0
    assert [similarities(a, o[None])[0] for o in others] == pytest.approx(list(scores))  # one at a time too
