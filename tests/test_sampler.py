"""The clip sampler: official loop parity, branch skipping, schedulers, seeds, callbacks, interrupts."""
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import DATA
from m3ddm_core.pipeline.guidance import GuidedDenoiser, clip_conditioning, guidance_weights
from reference import combine, official_noise_predictions, official_sampler_loop
from m3ddm_core.pipeline.sampler import sample_clip
from m3ddm_core.pipeline.passes import window_noise


@pytest.fixture(scope="module")
def loop():
    from safetensors.torch import load_file
    tensors = load_file(str(DATA / "loop.safetensors"))
    meta = json.loads((DATA / "loop.json").read_text())
    guides = {i: tensors[f"guide_latent_{i:02d}"] for i in meta["guide_frames"]}
    return tensors, meta, guides


def _tolerance(ref):
    return 1e-3 * max(1.0, ref.abs().max().item())


def _conditioning(model, t, guides):
    with torch.no_grad():
        tokens = model.encode_global(t["global_latents"])
        uncond_tokens = model.encode_global(torch.zeros_like(t["global_latents"]))
    mask = F.interpolate(t["mask_pixels"], size=t["ori_latents"].shape[-2:])[0, 0]
    return clip_conditioning(t["masked_latents"], t["uncond_latent"], mask, guides, tokens, uncond_tokens)


def _start(t):
    return t["ori_latents"].permute(1, 0, 2, 3).unsqueeze(0)


def test_official_loop_reproduces_the_recording(tiny_unet, loop):
    t, meta, guides = loop
    with torch.no_grad():
        out = official_sampler_loop(tiny_unet, _start(t), _conditioning(tiny_unet, t, guides), t["global_latents"],
                                    t["noise"], meta["num_inference_steps"], meta["guidance_scale_s1"],
                                    meta["previous_guidance_scale_s2"], meta["fps"])
    assert (out - t["final_latents"]).abs().max().item() <= _tolerance(t["final_latents"])


def test_three_branch_sampler_reproduces_the_official_loop(tiny_unet, loop):
    """The default sampler skips the e01 branch the official code computes and drops: same result."""
    t, meta, guides = loop
    cond = _conditioning(tiny_unet, t, guides)
    calls = []
    start = _start(t)
    out = sample_clip(tiny_unet, start, cond, t["noise"], meta["fps"], meta["num_inference_steps"],
                      meta["guidance_scale_s1"], meta["previous_guidance_scale_s2"], "pndm", callback=calls.append)
    assert (out - t["final_latents"]).abs().max().item() <= _tolerance(t["final_latents"])
    assert [c["i"] for c in calls] == list(range(meta["num_inference_steps"]))
    assert calls[-1]["denoised"].shape == out.shape


class BranchCounter(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.batches = model, []

    dtype = property(lambda self: self.model.dtype)

    def forward(self, x, t, fps, global_tokens):
        self.batches.append(x.shape[0])
        return self.model(x, t, fps, global_tokens)


@pytest.mark.parametrize("s1, s2, branches", [(2.0, 4.0, 3), (1.0, 4.0, 2), (3.0, 3.0, 2), (1.0, 1.0, 1), (2.0, 0.0, 2)])
def test_branches_that_cannot_change_the_result_are_skipped(tiny_unet, loop, s1, s2, branches):
    t, meta, guides = loop
    cond = _conditioning(tiny_unet, t, guides)
    x = torch.randn(1, 4, 16, 16, 16, generator=torch.Generator().manual_seed(3))
    counter = BranchCounter(tiny_unet)
    with torch.no_grad():
        got = GuidedDenoiser(counter, cond, s1, s2)(x, 500, 8)
        e00, e10, _, e11 = official_noise_predictions(tiny_unet, x, 500, 8, cond, t["global_latents"])
    assert counter.batches == [branches]
    assert (got - combine(e00, e10, e11, s1, s2)).abs().max().item() <= 1e-4
    assert sum(w != 0 for w in guidance_weights(s1, s2).values()) == branches


def test_sequential_low_vram_mode_equals_batched(tiny_unet, loop):
    t, _, guides = loop
    cond = _conditioning(tiny_unet, t, guides)
    x = torch.randn(1, 4, 16, 16, 16, generator=torch.Generator().manual_seed(4))
    counter = BranchCounter(tiny_unet)
    with torch.no_grad():
        a = GuidedDenoiser(tiny_unet, cond, 2.0, 4.0)(x, 300, 8)
        b = GuidedDenoiser(counter, cond, 2.0, 4.0, sequential=True)(x, 300, 8)
    assert counter.batches == [1, 1, 1]
    assert (a - b).abs().max().item() <= 1e-4


@pytest.fixture(scope="module")
def nano_unet():
    """A seeded random nano UNet (plumbing: how clips share a UNet call does not depend on the weights)."""
    from conftest import NANO_CONFIG
    from m3ddm_core import build_unet
    torch.manual_seed(0)
    return build_unet(NANO_CONFIG)


@pytest.mark.parametrize("sequential", [False, True])
def test_clips_denoised_together_equal_each_alone(nano_unet, loop, sequential):
    """Two clips -- other guides, other global tokens, other fps -- in one denoiser: each gets what it gets alone
    (fp32, 1e-5 relative), with 2 x 3 samples per UNet call (3 calls of 2 when sequential); the sampler steps them
    as it steps each. Global frames of a 128 canvas (576 tokens, not 3,136): the cross-attention is most of the cost."""
    tiny_unet = nano_unet
    t, _, guides = loop
    t = dict(t, global_latents=F.avg_pool2d(t["global_latents"], 2))
    first = _conditioning(tiny_unet, t, guides)
    other = dict(t, global_latents=t["global_latents"].flip(0), masked_latents=t["masked_latents"] * 0.5)
    second = _conditioning(tiny_unet, other, {})
    x = torch.randn(2, 4, 16, 16, 16, generator=torch.Generator().manual_seed(5))
    counter = BranchCounter(tiny_unet)
    with torch.no_grad():
        both = GuidedDenoiser(counter, [first, second], 2.0, 4.0, sequential)(x, 300, [8, 2])
        alone = [GuidedDenoiser(tiny_unet, c, 2.0, 4.0)(x[i:i + 1], 300, fps)
                 for i, (c, fps) in enumerate([(first, 8), (second, 2)])]
    assert counter.batches == ([2, 2, 2] if sequential else [6])
    for i in range(2):
        assert (both[i:i + 1] - alone[i]).abs().max() <= 1e-5 * alone[i].abs().max()
    assert not torch.allclose(alone[0], GuidedDenoiser(tiny_unet, first, 2.0, 4.0)(x[:1], 300, 2))  # fps matters
    start = _start(t).expand(2, -1, -1, -1, -1)
    noise = torch.cat([t["noise"], t["noise"].flip(2)])
    together = sample_clip(tiny_unet, start, [first, second], noise, [8, 2], steps=2)
    for i, (c, fps) in enumerate([(first, 8), (second, 2)]):
        one = sample_clip(tiny_unet, start[:1], c, noise[i:i + 1], fps, steps=2)
        assert (together[i:i + 1] - one).abs().max() <= 1e-5 * one.abs().max()


@pytest.mark.parametrize("scheduler", ["ddim", "dpmpp_2m"])
def test_fewer_step_schedulers_run(tiny_unet, loop, scheduler):
    t, meta, guides = loop
    cond = _conditioning(tiny_unet, t, guides)
    start = _start(t)
    out = sample_clip(tiny_unet, start, cond, t["noise"], 8, steps=3, scheduler=scheduler, s1=1.0, s2=1.0)
    pndm = sample_clip(tiny_unet, start, cond, t["noise"], 8, steps=3, scheduler="pndm", s1=1.0, s2=1.0)
    assert out.shape == start.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, pndm)


def test_unknown_scheduler():
    from m3ddm_core.pipeline.noise_schedulers import make_scheduler
    with pytest.raises(ValueError, match="pndm, ddim, dpmpp_2m"):
        make_scheduler("euler")


def test_seeded_noise_is_reproducible_and_device_independent():
    a, b = window_noise(5, (1, 4, 16, 8, 8)), window_noise(5, (1, 4, 16, 8, 8))
    assert a.device.type == "cpu" and torch.equal(a, b)
    assert not torch.equal(a, window_noise(6, (1, 4, 16, 8, 8)))


class Stop(Exception):
    pass


def test_interrupt_aborts_at_the_requested_step(tiny_unet, loop):
    t, _, guides = loop
    cond = _conditioning(tiny_unet, t, guides)
    start = _start(t)
    seen = []

    def check():
        if len(seen) == 2:
            raise Stop()

    with pytest.raises(Stop):
        sample_clip(tiny_unet, start, cond, t["noise"], 8, steps=4, s1=1.0, s2=1.0, callback=seen.append,
                    check_interrupt=check)
    assert len(seen) == 2
    fresh = sample_clip(tiny_unet, start, cond, t["noise"], 8, steps=2, s1=1.0, s2=1.0)
    again = sample_clip(tiny_unet, start, cond, t["noise"], 8, steps=2, s1=1.0, s2=1.0)
    assert torch.equal(fresh, again)


def test_guides_replace_both_latents_with_mask_zero():
    masked = torch.randn(16, 4, 8, 8)
    guide = torch.full((4, 8, 8), 7.0)
    cond = clip_conditioning(masked, torch.zeros(1, 4, 8, 8), torch.ones(8, 8), {3: guide}, None, None)
    assert torch.equal(cond.masked_latents[0, :, 3], guide) and torch.equal(cond.uncond_latents[0, :, 3], guide)
    assert cond.mask[0, 0, 3].sum() == 0 and cond.uncond_mask[0, 0, 3].sum() == 0
    assert cond.mask[0, 0, 2].sum() == 64 and torch.equal(cond.masked_latents[0, :, 2], masked[2])
    with pytest.raises(ValueError, match="outside the clip"):
        clip_conditioning(masked, torch.zeros(1, 4, 8, 8), torch.ones(8, 8), {16: guide}, None, None)
