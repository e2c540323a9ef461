"""Before/after frames: the source where it lies in the output frame, letterboxed, beside the result."""
import pytest
import torch

from m3ddm_core import compare_frames, comparison_hw, plan_canvas


def test_portrait_results_go_side_by_side_with_the_source_letterboxed_at_its_place():
    plan = plan_canvas((90, 160), ratio="9:16")  # 160x90 -> 160x284
    source, result = torch.rand(3, 90, 160, 3), torch.rand(3, *plan.output_hw, 3)
    out = compare_frames(source, result, plan, gap=10)
    oh, ow = plan.output_hw
    assert out.shape == (3, oh, 2 * ow + 10, 3) == (3, *comparison_hw(plan, gap=10), 3)
    y, x = plan.content_out_yx
    assert torch.equal(out[:, y:y + 90, x:x + 160], source)
    assert out[:, :y, :ow].abs().max() == 0 and out[:, y + 90:, :ow].abs().max() == 0  # letterbox
    assert out[:, :, ow:ow + 10].abs().max() == 0  # the gap
    assert torch.equal(out[:, :, ow + 10:], result)


def test_landscape_results_are_stacked_and_the_layout_can_be_forced():
    plan = plan_canvas((160, 90), ratio="16:9")
    source, result = torch.rand(2, 160, 90, 3), torch.rand(2, *plan.output_hw, 3)
    oh, ow = plan.output_hw
    stacked = compare_frames(source, result, plan, gap=4, background=0.5)
    assert stacked.shape == (2, 2 * oh + 4, ow, 3) and torch.equal(stacked[:, oh + 4:], result)
    y, x = plan.content_out_yx
    assert torch.equal(stacked[:, y:y + 160, x:x + 90], source) and stacked[0, 0, 0, 0] == 0.5
    beside = compare_frames(source, result, plan, layout="side by side", gap=0)
    assert beside.shape == (2, oh, 2 * ow, 3) and torch.equal(beside[:, :, ow:], result)


def test_mismatched_frames_are_refused():
    plan = plan_canvas((90, 160), ratio="9:16")
    with pytest.raises(ValueError, match="canvas was planned for 160x90"):
        compare_frames(torch.rand(1, 80, 160, 3), torch.rand(1, *plan.output_hw, 3), plan)
    with pytest.raises(ValueError, match="2 result frames"):
        compare_frames(torch.rand(1, 90, 160, 3), torch.rand(2, *plan.output_hw, 3), plan)
    with pytest.raises(ValueError, match="layout 'grid' is unknown"):
        compare_frames(torch.rand(1, 90, 160, 3), torch.rand(1, *plan.output_hw, 3), plan, layout="grid")
