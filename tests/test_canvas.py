"""Canvas geometry (official fixtures), targets, the prefill, and the masks."""
import json

import cv2
import numpy as np
import pytest

from conftest import DATA, SHARED, _shared_required
from m3ddm_core.pipeline.canvas import CanvasError, build_canvas, parse_ratio, plan_canvas
from reference import official_canvas

CASES = json.loads((DATA / "canvas_geometry.json").read_text())
LOGIC = SHARED / "m3ddm_reference" / "logic"


@pytest.mark.parametrize("case", [c for c in CASES if "canvas_hw" in c], ids=lambda c: c["files"]["input"])
def test_official_geometry_is_reproduced_exactly(case):
    got = official_canvas(case["frame_hw"], case["target_ratio_list"])
    assert got == {k: case[k] for k in ("canvas_hw", "content_box_yxhw", "mask_sum")}


def _read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("case", [c for c in CASES if "canvas_hw" in c], ids=lambda c: c["files"]["input"])
def test_telea_prefill_matches_official_pngs(case):
    if not LOGIC.is_dir():
        if _shared_required():
            pytest.fail(f"{LOGIC} missing")
        pytest.skip(f"canvas PNGs not found at {LOGIC} (../shared is absent)")
    frame = _read_rgb(LOGIC / case["files"]["input"])
    ref = _read_rgb(LOGIC / case["files"]["inpainted"])
    plan = plan_canvas(tuple(case["frame_hw"]), ratio=case["target_ratio_list"])
    prefilled, masked = build_canvas(frame, plan)
    assert prefilled.shape == ref.shape
    assert np.abs(prefilled.astype(int) - ref.astype(int)).mean() <= 1.0
    # same from a ComfyUI-style float frame
    prefilled_f, _ = build_canvas(frame.astype(np.float32) / 255.0, plan)
    assert np.array_equal(prefilled_f, prefilled)
    y, x, h, w = plan.content_box
    assert masked[:y].sum() == 0 and masked[y + h:].sum() == 0 and np.array_equal(prefilled[y:y + h, x:x + w], masked[y:y + h, x:x + w])


def test_small_inputs_that_crash_the_official_code_work():
    crash = next(c for c in CASES if "official_error" in c)
    plan = plan_canvas(tuple(crash["frame_hw"]), ratio=crash["target_ratio_list"])
    assert plan.canvas_hw == (256, 256)
    y, x, h, w = plan.content_box
    assert h == w and h > 64  # scaled up into the 256 canvas
    pre, masked = build_canvas(np.full((64, 64, 3), 0.5, np.float32), plan)
    assert pre.shape == (256, 256, 3)


def test_ratio_target_output_size_and_centering():
    plan = plan_canvas((360, 640), ratio="9:16")
    assert plan.output_hw == (1138, 640) and plan.content_out_yx == (389, 0)
    with pytest.raises(CanvasError, match="already has the target shape: nothing to outpaint"):
        plan_canvas((1080, 1920), ratio="16:9")


def output_box_on_canvas(plan) -> tuple[float, float, float, float]:
    """The output region in canvas coordinates ``(y, x, h, w)`` (floats): where the whole output frame lands when
    the content box is scaled back to the frame."""
    sy, sx = plan.content_box[2] / plan.frame_hw[0], plan.content_box[3] / plan.frame_hw[1]
    y = plan.content_box[0] - plan.content_out_yx[0] * sy
    x = plan.content_box[1] - plan.content_out_yx[1] * sx
    return y, x, plan.output_hw[0] * sy, plan.output_hw[1] * sx


def test_explicit_size_and_per_side_padding():
    plan = plan_canvas((100, 200), size=(300, 400))
    assert plan.output_hw == (300, 400) and plan.content_out_yx == (100, 100)
    plan = plan_canvas((100, 200), padding=(50, 0, 0, 25))
    assert plan.output_hw == (125, 250) and plan.content_out_yx == (0, 50)
    plan = plan_canvas((100, 200), padding=(0.25, 0.25, 0, 0))  # fractions of the width
    assert plan.output_hw == (100, 300) and plan.content_out_yx == (0, 50)
    y, x, h, w = plan.content_box
    oy, ox, oh, ow = output_box_on_canvas(plan)
    assert abs(oh - ow * 100 / 300) < 1e-6 and x > 0


def test_one_sided_padding_puts_content_against_the_kept_edge():
    plan = plan_canvas((256, 256), padding=(0, 256, 0, 0))  # extend to the right only
    oy, ox, oh, ow = output_box_on_canvas(plan)
    y, x, h, w = plan.content_box
    assert abs(x - ox) <= 1 and x + w < ox + ow


def test_tight_canvas_has_the_target_aspect_and_multiples_of_64():
    plan = plan_canvas((360, 640), ratio="9:16", mode="tight")
    ch, cw = plan.canvas_hw
    assert ch % 64 == 0 and cw % 64 == 0 and ch > cw
    oy, ox, oh, ow = output_box_on_canvas(plan)
    # nothing generated only to be cropped away (within the rounding of the content box to whole pixels)
    assert abs(oy) < 1 and abs(ox) < 1 and abs(oh - ch) < 2 and abs(ow - cw) < 2


@pytest.mark.parametrize("text", ["16/9", "0:1", "abc", "", "16:0", "-4:3"])
def test_malformed_ratios_are_rejected(text):
    with pytest.raises(CanvasError, match="ratio"):
        plan_canvas((100, 100), ratio=text)


def test_ratio_parse():
    assert parse_ratio(" 16 : 9 ") == 16 / 9


def test_target_smaller_than_input_explains_outpainting():
    with pytest.raises(CanvasError, match="never crops"):
        plan_canvas((100, 200), size=(50, 400))


def test_negative_or_zero_padding():
    with pytest.raises(CanvasError, match="negative"):
        plan_canvas((100, 200), padding=(-1, 0, 0, 0))
    with pytest.raises(CanvasError, match="nothing to outpaint"):
        plan_canvas((100, 200), padding=(0, 0, 0, 0))


def test_padding_too_large_for_the_model():
    with pytest.raises(CanvasError, match="less than 16 px"):
        plan_canvas((100, 100), padding=(5000, 5000, 0, 0))


def test_pixel_mask_is_the_complement_of_the_content_box():
    plan = plan_canvas((360, 640), ratio="9:16")
    mask = plan.pixel_mask()
    y, x, h, w = plan.content_box
    assert mask.sum() == mask.size - h * w and mask[y:y + h, x:x + w].max() == 0


def test_a_target_choice_plans_as_that_target_alone():
    from m3ddm_core import TARGETS, plan_target

    given = dict(ratio="9:16", size=(720, 640), padding=(10, 10, 0, 0))
    for target, kwargs in zip(TARGETS, ({"ratio": "9:16"}, {"size": (720, 640)}, {"padding": (10, 10, 0, 0)})):
        assert plan_target((360, 640), target, **given) == plan_canvas((360, 640), **kwargs), target
    with pytest.raises(CanvasError, match="target 'square' is unknown; choose one of aspect ratio, output size"):
        plan_target((360, 640), "square", **given)


def test_a_video_target_has_even_sides_or_says_which_to_change():
    from m3ddm_core import plan_target

    oh, ow = plan_target((179, 321), "aspect ratio", ratio="9:16", video=True).output_hw
    assert oh % 2 == ow % 2 == 0 and ow >= 321 and abs(ow / oh - 9 / 16) < 2 / oh  # rounded up to even sides
    with pytest.raises(CanvasError, match="video encoders need even sides: make the output width"):
        plan_target((360, 640), "padding", padding=(3, 0, 0, 0), video=True)
    assert plan_target((360, 640), "padding", padding=(3, 0, 0, 0)).output_hw == (360, 643)  # an image: fine
