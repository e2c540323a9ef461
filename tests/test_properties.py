"""Property tests (hypothesis) of the geometry: for random frame sizes and targets the content box lies inside
the canvas, the mask is its complement, the output has the target aspect within a pixel, and the composite
returns the original pixels bit-exact."""
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from m3ddm_core import composite, plan_canvas
from m3ddm_core.pipeline.canvas import CanvasError, parse_ratio

sizes = st.tuples(st.integers(8, 2200), st.integers(8, 2200))
ratios = st.sampled_from(["16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "2:3", "16:9,9:16", "3:4,1:1,2:3,9:16"])
modes = st.sampled_from(["official", "tight"])


def _check_plan(plan):
    ch, cw = plan.canvas_hw
    y, x, h, w = plan.content_box
    assert 0 <= y and 0 <= x and y + h <= ch and x + w <= cw and h > 0 and w > 0
    mask = plan.pixel_mask()
    inside = torch.zeros(ch, cw, dtype=torch.bool)
    inside[y:y + h, x:x + w] = True
    assert torch.equal(torch.from_numpy(mask) == 1, ~inside)  # mask = complement of the content box
    oy, ox = plan.content_out_yx
    assert oy >= 0 and ox >= 0 and oy + plan.frame_hw[0] <= plan.output_hw[0] and ox + plan.frame_hw[1] <= plan.output_hw[1]


@settings(max_examples=200, deadline=None)
@given(sizes, ratios, modes)
def test_ratio_targets(hw, ratio, mode):
    try:
        plan = plan_canvas(hw, ratio=ratio, mode=mode)
    except CanvasError as exc:
        # only extreme aspect changes, and targets the frame already has, are refused
        assert "less than 16 px" in str(exc) or "nothing to outpaint" in str(exc)
        return
    _check_plan(plan)
    oh, ow = plan.output_hw
    assert (oh - hw[0]) % 2 == 0 and (ow - hw[1]) % 2 == 0  # grown evenly: centred, and even frames stay even
    if "," not in ratio:
        target = parse_ratio(ratio)
        # the output has the target aspect within one pixel (on the axis that grew)
        assert min(abs(ow / target - oh), abs(oh * target - ow)) <= 1.0 + 1e-9


@settings(max_examples=150, deadline=None)
@given(sizes, st.lists(st.one_of(st.integers(0, 600), st.floats(0.01, 0.99)), min_size=4, max_size=4), modes)
def test_padding_targets(hw, pads, mode):
    if all(p == 0 for p in pads):
        return
    try:
        plan = plan_canvas(hw, padding=pads, mode=mode)
    except CanvasError as exc:
        assert "less than 16 px" in str(exc)
        return
    _check_plan(plan)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(st.integers(8, 96), st.integers(8, 96)), ratios, st.integers(0, 12), st.integers(1, 3),
       st.sampled_from([64, 128, 512]))
def test_composite_keeps_original_pixels_bit_exact(hw, ratio, feather, n, gen_size):
    try:
        plan = plan_canvas(hw, ratio=ratio)
    except CanvasError:
        assume(False)  # extreme aspect changes are refused (tested above); nothing to composite
    g = torch.Generator().manual_seed(hw[0] * 1000 + hw[1])
    original = torch.rand(n, *hw, 3, generator=g)
    generated = torch.rand(n, gen_size, gen_size, 3, generator=g)  # any resolution of the square canvas
    out = composite(original, generated, plan, feather)
    y, x = plan.content_out_yx
    assert out.shape == (n, *plan.output_hw, 3)
    assert torch.equal(out[:, y:y + hw[0], x:x + hw[1]], original)
    assert out.min() >= 0 and out.max() <= 1
