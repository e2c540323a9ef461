"""pipeline/inputs.py: the one input check every front-end calls and the parsers of the text inputs (what the
front-ends offer: tests/test_parameters.py)."""
import numpy as np
import pytest

from m3ddm_core import Edit, ShotError, check_inputs, parse_frame_indexes, parse_shot_seeds, resolve_edit


def test_every_bad_input_gives_one_message_led_by_its_name():
    problems = check_inputs(working_size=100, ratio="9/16", cuts="12, x", strides="15,3", schedule="weekly",
                            frame_indexes="a-b")
    assert [p.split(":")[0] for p in problems] == ["working_size", "aspect_ratio", "cuts", "strides", "schedule",
                                                   "frame_indexes"], problems
    assert check_inputs(working_size=256, ratio="9:16", cuts="12, 40", strides="15,5,1", schedule="fixed",
                        frame_indexes="0-15") == []


def test_inputs_that_count_frames_are_checked_against_the_video_once_it_is_known():
    assert check_inputs(cuts="40", frame_indexes="30-45") == []  # the length is not known yet: only the form
    problems = check_inputs(cuts="40", frame_indexes="30-45", num_frames=32)
    assert [p.split(":")[0] for p in problems] == ["cuts", "frame_indexes"], problems


@pytest.mark.parametrize("text, expected", [
    ("0-15", list(range(16))),
    ("0,15,30", [0, 15, 30] + [30] * 13),  # fewer than 16: padded with the last, as the official code pads
    (" 32 - 35 , 40", [32, 33, 34, 35, 40] + [40] * 11),
    ("", list(range(16))),
])
def test_frame_indexes_are_a_clip_of_16(text, expected):
    assert parse_frame_indexes(text, 64) == expected


@pytest.mark.parametrize("text, num_frames, message", [
    ("0-20", 18, r"\[18, 19, 20\] are outside the video \(0..17\)"),
    ("a-b", None, "must look like 0-15"),
    ("0-5,0-5,0-5", None, "18 frame indexes given; one clip holds at most 16"),
    ("0-99999999999", None, "one clip holds at most 16"),  # refused before the range is listed
])
def test_bad_frame_indexes_say_what_is_wrong(text, num_frames, message):
    with pytest.raises(ValueError, match=message):
        parse_frame_indexes(text, num_frames)


def test_shot_seeds_count_shots_from_one_and_refuse_a_shot_that_does_not_exist():
    assert parse_shot_seeds("2:1234, 3:7", 3) == {1: 1234, 2: 7}
    assert parse_shot_seeds("  ", 3) == {}
    with pytest.raises(ValueError, match=r"shot 4 does not exist \(this video has 3 shot\(s\)\)"):
        parse_shot_seeds("4:1", 3)
    with pytest.raises(ValueError, match="write shot:seed pairs"):
        parse_shot_seeds("2=5", 3)


def _two_shots(cut: int, n: int) -> list[np.ndarray]:
    """Two still shots of unrelated random texture, the second starting at ``cut``: ``n`` frames [90, 160, 3]."""
    a, b = (np.random.default_rng(s).integers(0, 256, (90, 160, 3), dtype=np.uint8) for s in (1, 2))
    return [a if i < cut else b for i in range(n)]


def test_cuts_are_none_given_or_found_as_the_shots_mode_says():
    frames = _two_shots(20, 40)
    assert resolve_edit("none", "5", "auto", frames, 40) == Edit()
    assert resolve_edit("list", "12, 30", "none", frames, 40).cuts == (12, 30)
    found = resolve_edit("detect", "", "auto", frames, 40)
    assert found.cuts == (20,) and found.groups == (0, 1) and found.labels == "A B"
    assert found.notes() == ["2 shot(s); cuts at frames [20]", "camera set-ups of the 2 shots: A B"]
    assert found.caption(19) == "shot 1 A" and found.caption(20) == "shot 2 B"  # on the canvas preview
    with pytest.raises(ShotError, match="outside"):
        resolve_edit("list", "45", "auto", frames, 40)
    with pytest.raises(ShotError, match="shots 'sometimes' is unknown; choose one of none, detect, list"):
        resolve_edit("sometimes", "", "auto", frames, 40)
