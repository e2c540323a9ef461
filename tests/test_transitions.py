"""Gradual transitions and returning set-ups (issue 33), against the constructed edits' known truth."""
import numpy as np

from constructed_edits import (BLUE, GREEN, GREY, GREY2, WARM, Shot, assemble, film, flash, handheld,
                               interview_edits, lighting_edits, pan, picture, still, whip)
from m3ddm_core.pipeline.setups import group_shots
from m3ddm_core.pipeline.transitions import (Transition, TransitionDetector, blend_borders, cuts_in,
                                             detect_transitions, transition_at)


def _matches(found, truth) -> None:
    """One found transition per true one: same kind, ends within a frame, weights within 0.05 on average."""
    assert [t.kind for t in found] == [g.kind for g in truth]
    for t, g in zip(found, truth):
        assert abs(t.start - g.start) <= 1 and abs(t.end - g.end) <= 1, (t, g)
        err = np.mean([abs(t.weight(f) - g.weights[f - g.start]) for f in range(g.start, g.end)])
        assert err < 0.05, (t, g, err)


def test_a_dissolve_is_found_with_its_range_and_weights():
    edit = assemble("dissolve", "", [Shot(41, GREY, still(), 30), Shot(42, BLUE, still(), 30)], dissolve=8)
    found = detect_transitions(edit.frames)
    _matches(found, edit.gradual)
    assert found[0].weights == tuple(sorted(found[0].weights))  # rising
    one_palette = assemble("", "", [Shot(43, GREY, still(), 30), Shot(44, GREY2, still(), 30)], dissolve=6)
    _matches(detect_transitions(one_palette.frames), one_palette.gradual)


def test_fades_out_and_in_are_found_with_and_without_black_between():
    for black in (0, 4):
        edit = assemble("fade", "", [Shot(45, WARM, still(), 30), Shot(46, GREEN, still(), 30)], fade=12,
                        black=black)
        _matches(detect_transitions(edit.frames), edit.gradual)


def test_no_transition_in_pans_shake_flashes_lighting_or_hard_cuts():
    for path in (pan(0.1), pan(0.25, 0.05), whip(0.35), whip(0.5, 8), handheld(1, 8, 0.5), still()):
        assert detect_transitions(film(picture(47, WARM), path, 40, seed=2)) == []
    shot = film(picture(48, GREY), still(), 40, seed=3)
    for kind in ("white", "lit"):
        for n in (1, 3):
            assert detect_transitions(flash(shot, 20, kind, n)) == [], (kind, n)
    for edit in lighting_edits(0):
        assert detect_transitions(edit.frames) == [], edit.name
    cuts = assemble("cuts", "", [Shot(49, GREY, still(), 25), Shot(50, GREY2, still(), 25),
                                 Shot(51, WARM, pan(0.15), 25)])
    assert detect_transitions(cuts.frames) == []


def test_the_detector_streams_and_the_blend_rule():
    edit = assemble("dissolve", "", [Shot(52, GREY, still(), 30), Shot(53, BLUE, still(), 30)], dissolve=6)
    detector = TransitionDetector()
    for f in edit.frames:
        detector.feed(f)
    assert len(detector._thumbs) <= detector._keep
    found = detector.finish()
    assert found == detect_transitions(edit.frames)
    t = Transition(10, 14, "dissolve", (0.2, 0.4, 0.6, 0.8))
    a, b = np.full((2, 2), 1.0), np.full((2, 2), 0.5)
    assert np.allclose(blend_borders(t, 11, a, b), 0.6 * 1.0 + 0.4 * 0.5)
    assert np.allclose(blend_borders(t, 9, a, b), a) and np.allclose(blend_borders(t, 14, a, b), b)
    fade = Transition(10, 14, "fade_out", (0.2, 0.4, 0.6, 0.8))
    assert np.allclose(blend_borders(fade, 13, a), 0.2) and np.allclose(blend_borders(fade, 13, a, black=-1), -0.6)
    assert transition_at([t], 13) is t and transition_at([t], 14) is None
    assert cuts_in([5, 12, 20], [t]) == [12]


def test_an_interview_is_grouped_by_set_up():
    for edit in interview_edits(0):
        assert edit.groups == [0, 1, 0, 1, 4]
        assert group_shots(edit.frames, edit.cuts) == edit.groups, edit.name


def test_set_ups_of_one_palette_arranged_differently_are_not_grouped():
    frames = [f for k in range(3) for f in film(picture(60 + k, WARM), still(0.5), 20, seed=k)]
    assert group_shots(frames, [20, 40]) == [0, 1, 2]
    frames = film(picture(63, WARM), still(0.5), 20, seed=4) + film(picture(63, WARM), still(0.5), 20, seed=5)
    assert group_shots(frames, [20]) == [0, 0]  # the same set-up, new noise
