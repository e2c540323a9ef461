"""Native-resolution composite: original pixels bit-exact, seam feather on the generated side, any upscale."""
import pytest
import torch

from m3ddm_core import composite, plan_canvas
from m3ddm_core.pipeline.composite import CompositeLayout, feather_weights
from helpers import full_frame_composite


def _frames(n, h, w, seed=0):
    return torch.rand(n, h, w, 3, generator=torch.Generator().manual_seed(seed))


def test_original_pixels_survive_bit_exact_and_border_comes_from_the_canvas():
    plan = plan_canvas((90, 160), ratio="9:16")
    orig = _frames(2, 90, 160)
    gen = torch.full((2, 256, 256, 3), 0.25)
    out = composite(orig, gen, plan, feather=0)
    y, x = plan.content_out_yx
    assert out.shape == (2, *plan.output_hw, 3)
    assert torch.equal(out[:, y:y + 90, x:x + 160], orig)
    assert torch.allclose(out[:, : y - 1], torch.tensor(0.25))
    assert torch.allclose(out[:, y + 91:], torch.tensor(0.25))


def test_upscaled_generated_frames_map_to_the_same_place():
    plan = plan_canvas((90, 160), ratio="9:16")
    ramp = torch.linspace(0, 1, 256).view(1, 256, 1, 1).expand(1, 256, 256, 3).contiguous()
    up = torch.nn.functional.interpolate(ramp.permute(0, 3, 1, 2), scale_factor=4, mode="bilinear",
                                         align_corners=False).permute(0, 2, 3, 1)
    orig = _frames(1, 90, 160)
    a = composite(orig, ramp, plan, feather=0)
    b = composite(orig, up, plan, feather=0)
    assert (a - b).abs().max() < 0.01


def test_feather_is_on_the_generated_side_only():
    plan = plan_canvas((64, 64), padding=(32, 32, 0, 0))
    w = feather_weights(plan, 8)
    y, x = plan.content_out_yx
    assert w[:, x:x + 64].max() == 0  # never touches the original
    assert 0 < w[0, x - 1] < w[0, x - 4] < 1 and w[0, x - 8] == 1 and w[0, 0] == 1
    orig = torch.ones(1, 64, 64, 3)
    out = composite(orig, torch.zeros(1, 256, 256, 3), plan, feather=8)
    assert 0 < out[0, 10, x - 1, 0] < 1  # blends from the frame edge into the generated border
    assert out[0, 10, 0, 0] == 0


def test_integer_frames_stay_integer():
    plan = plan_canvas((32, 32), padding=(16, 16, 0, 0))
    orig = (torch.rand(1, 32, 32, 3) * 255).to(torch.uint8).float() / 255
    out = composite(orig, torch.rand(1, 256, 256, 3), plan)
    assert torch.equal(out[:, :, 16:48], orig)


def test_chunks_composited_into_a_reused_buffer_equal_the_whole_video():
    plan = plan_canvas((90, 160), ratio="9:16")
    orig, gen = _frames(4, 90, 160, seed=1), _frames(4, 256, 256, seed=2)
    whole = composite(orig, gen, plan, feather=6)
    buffer = torch.empty(2, *plan.output_hw, 3)
    for i in (0, 2):
        chunk = composite(orig[i:i + 2], gen[i:i + 2], plan, feather=6, out=buffer)
        assert chunk is buffer and torch.equal(chunk, whole[i:i + 2])
    with pytest.raises(ValueError, match=r"out is \(2,"):
        composite(orig, gen, plan, out=buffer)


@pytest.mark.parametrize("size,kwargs", [((90, 160), {"ratio": "9:16"}), ((160, 90), {"ratio": "16:9"}),
                                         ((48, 40), {"padding": (8, 5, 3, 11)})])
def test_only_the_border_is_resampled_yet_every_pixel_equals_the_full_frame_composite(size, kwargs):
    plan = plan_canvas(size, **kwargs)
    orig, gen = _frames(2, *size, seed=3), _frames(2, 128, 96, seed=4)
    expected = full_frame_composite(orig, gen, plan, feather=5)
    assert torch.equal(composite(orig, gen, plan, feather=5), expected)
    layout = CompositeLayout(plan, 5)
    assert torch.equal(composite(orig, gen, plan, feather=5, layout=layout), expected)
    with pytest.raises(ValueError, match="another plan, feather or device"):
        composite(orig, gen, plan, feather=4, layout=layout)
