"""The 3D UNet: official key layout, official numerics, forward API and pluggable kernels."""
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import DATA
from m3ddm_core import FULL_SIZE_CONFIG, build_unet, sdpa_attention, softmax_attention
from reference import official_global_tokens, official_unet_forward
from m3ddm_core.model.unet3d import TORCH_OPS, Pseudo3DConv


def test_full_size_keys_and_shapes_match_the_official_manifest():
    manifest = json.loads((DATA / "full_size_state_dict_manifest.json").read_text())
    config = json.loads((DATA / "full_size_config.json").read_text())
    sd = build_unet(config, device="meta").state_dict()
    assert list(sd) == [t["key"] for t in manifest["tensors"]]
    for entry in manifest["tensors"]:
        assert list(sd[entry["key"]].shape) == entry["shape"], entry["key"]
    assert sum(v.numel() for v in sd.values()) == manifest["total_params"] == 1_299_281_339


def test_builtin_full_size_default_equals_the_reference_config():
    assert FULL_SIZE_CONFIG == json.loads((DATA / "full_size_config.json").read_text())


def test_full_size_forward_runs_on_meta_device():
    model = build_unet(FULL_SIZE_CONFIG, device="meta")
    tokens = model.encode_global(torch.zeros(16, 4, 32, 32, device="meta"))
    assert tokens.shape == (1, 16 * 14 * 14, 320)
    out = model(torch.zeros(3, 9, 16, 32, 32, device="meta"), 500, 8, tokens.expand(3, -1, -1))
    assert out.shape == (3, 4, 16, 32, 32)


@pytest.mark.parametrize("branches", [1, 2, 4])
def test_tiny_unet_matches_official_output_fp32(tiny_unet, tiny_cases, branches):
    tensors, meta = tiny_cases
    case = next(c for c in meta["cases"] if c["branches"] == branches)
    out = official_unet_forward(tiny_unet, tensors[case["input"]], case["timestep"], case["fps"],
                                tensors["global_latents"], branches)
    ref = tensors[case["output"]]
    assert out.shape == ref.shape == (branches, 4, 16, 16, 16)
    assert (out - ref).abs().max().item() <= 1e-4


def test_explicit_softmax_kernel_matches_sdpa(tiny_unet, tiny_cases):
    tensors, meta = tiny_cases
    case = meta["cases"][0]
    args = (tensors[case["input"]], case["timestep"], case["fps"], tensors["global_latents"], 1)
    try:
        tiny_unet.set_attention(softmax_attention)
        slow = official_unet_forward(tiny_unet, *args)
    finally:
        tiny_unet.set_attention(sdpa_attention)
    assert (slow - tensors[case["output"]]).abs().max().item() <= 1e-4


# Measured on CPU with the tiny fixture (bf16 weights and activations vs. the fp32 official output):
# max |delta| ~0.06 on outputs of std ~0.6. The bound leaves room for other CPUs/kernels.
BF16_MAX_ABS = 0.25
BF16_MEAN_ABS = 0.03


def test_tiny_unet_bf16_is_finite_and_close(tiny_unet, tiny_cases):
    tensors, meta = tiny_cases
    case = next(c for c in meta["cases"] if c["branches"] == 4)
    model = build_unet(tiny_unet.raw_config, dtype=torch.bfloat16)
    model.load_state_dict(tiny_unet.state_dict())
    out = official_unet_forward(model, tensors[case["input"]].bfloat16(), case["timestep"], case["fps"],
                                tensors["global_latents"].bfloat16(), 4)
    assert out.dtype == torch.bfloat16
    diff = (out.float() - tensors[case["output"]]).abs()
    assert torch.isfinite(out).all()
    assert diff.max().item() <= BF16_MAX_ABS and diff.mean().item() <= BF16_MEAN_ABS, (diff.max(), diff.mean())


def test_uncond_global_tokens_are_the_encoder_of_zero_latents_not_zeros(tiny_unet, tiny_cases):
    tensors, _ = tiny_cases
    with torch.no_grad():
        uncond = tiny_unet.encode_global(torch.zeros(16, 4, 32, 32))
    assert uncond.abs().max() > 0  # biases and BatchNorm shifts make it non-zero


def test_official_branch_order_and_per_frame_tokens(tiny_unet, tiny_cases):
    tensors, _ = tiny_cases
    g = tensors["global_latents"]
    with torch.no_grad():
        cond, uncond = tiny_unet.encode_global(g)[0], tiny_unet.encode_global(torch.zeros_like(g))[0]
        for branches, order in ((4, "uucc"), (2, "uc"), (1, "c")):
            tokens = official_global_tokens(tiny_unet, g, branches, frames=3)
            assert tokens.shape == (branches * 3, 3136, 320)
            for i, kind in enumerate(order):  # every frame of a branch gets a copy of the branch's tokens
                for f in range(3):
                    assert torch.allclose(tokens[i * 3 + f], cond if kind == "c" else uncond, atol=1e-6)
    with pytest.raises(ValueError, match="1, 2 or 4"):
        official_global_tokens(tiny_unet, g, 3, frames=1)


def test_layers_come_from_the_injected_operations_namespace():
    built = []

    def counting(cls):
        class Counted(cls):
            def __init__(self, *a, **k):
                built.append(cls.__name__)
                super().__init__(*a, **k)
        return Counted

    ops = SimpleNamespace(**{n: counting(getattr(nn, n)) for n in
                             ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm")})
    config = dict(FULL_SIZE_CONFIG, block_out_channels=[16, 32, 32, 32], norm_num_groups=8)
    model = build_unet(config, device="meta", ops=ops)
    assert set(built) == {"Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm"}
    n_layers = sum(1 for m in model.modules() if type(m).__name__ == "Counted")
    n_plain = sum(1 for m in model.modules() if type(m) in (nn.Linear, nn.Conv1d, nn.Conv3d, nn.GroupNorm, nn.LayerNorm))
    assert n_layers == len(built) and n_plain == 0  # only the fixed-size global encoder uses torch.nn directly


def test_pseudo3d_conv3d_route_equals_the_per_frame_route():
    torch.manual_seed(0)
    conv = Pseudo3DConv(6, 10, TORCH_OPS)
    x = torch.randn(2, 6, 5, 7, 9)
    with torch.no_grad():
        per_frame, conv3d = conv.forward_per_frame(x), conv.forward_conv3d(x)
    assert per_frame.shape == conv3d.shape == (2, 10, 5, 7, 9)
    assert (per_frame - conv3d).abs().max().item() <= 1e-5


def test_pseudo3d_conv_calls_its_layers_on_the_route_the_caller_chooses(micro_model):
    """The caller picks the route, as it picks attention (the ComfyUI layer asks for per_frame when ComfyUI casts,
    streams or patches weights inside the layers' forward); the core reads nothing of the caller's layers."""
    conv = Pseudo3DConv(4, 4, TORCH_OPS)
    calls = []
    conv.spatial_conv.register_forward_hook(lambda *a: calls.append("spatial"))
    conv.temporal_conv.register_forward_hook(lambda *a: calls.append("temporal"))
    x = torch.randn(1, 4, 3, 5, 5)
    with torch.no_grad():
        conv(x)
        assert calls == []  # auto, CPU fp32: the conv3d route uses the weights directly
        conv.route = "per_frame"
        conv(x)
    assert calls == ["spatial", "temporal"]
    convs = [m for m in micro_model.modules() if isinstance(m, Pseudo3DConv)]
    try:
        micro_model.set_conv_route("per_frame")
        assert convs and all(m.route == "per_frame" for m in convs)
        with pytest.raises(ValueError, match="conv route 'fast' is unknown"):
            micro_model.set_conv_route("fast")
    finally:
        micro_model.set_conv_route("auto")
    assert all(m.route == "auto" for m in convs)


def test_pseudo3d_conv_keeps_the_per_frame_route_for_cpu_fp16():
    conv = Pseudo3DConv(4, 4, TORCH_OPS, dtype=torch.float16)
    calls = []
    conv.spatial_conv.register_forward_hook(lambda *a: calls.append("spatial"))
    with torch.no_grad():
        conv(torch.randn(1, 4, 3, 5, 5, dtype=torch.float16))
    assert calls == ["spatial"]


def test_attention_goes_through_the_injected_function(tiny_unet, tiny_cases):
    tensors, meta = tiny_cases
    calls = []

    def spy(q, k, v, heads):
        calls.append((q.shape, k.shape, heads))
        return sdpa_attention(q, k, v, heads)

    case = meta["cases"][0]
    try:
        tiny_unet.set_attention(spy)
        official_unet_forward(tiny_unet, tensors[case["input"]], case["timestep"], case["fps"], tensors["global_latents"], 1)
    finally:
        tiny_unet.set_attention(sdpa_attention)
    # every attention (self, cross and temporal) goes through the spy; cross-attention sees the 3,136 global tokens
    assert calls and all(h == 8 for _, _, h in calls)
    assert any(k[1] == 3136 for _, k, _ in calls)


def test_forward_rejects_global_tokens_of_another_batch_size(tiny_unet):
    with pytest.raises(ValueError, match="global_tokens has 3 batch items, sample has 1"):
        tiny_unet(torch.zeros(1, 9, 2, 16, 16), 10, 8, torch.zeros(3, 3136, 320))


def test_projected_and_per_frame_global_tokens_give_the_same_output(tiny_unet, tiny_cases):
    """K/V projected once per clip (ProjectedGlobalTokens) and the official per-frame layout compute the same
    thing."""
    tensors, meta = tiny_cases
    case = next(c for c in meta["cases"] if c["branches"] == 2)
    x = tensors[case["input"]]
    with torch.no_grad():
        cond = tiny_unet.encode_global(tensors["global_latents"])
        tokens = torch.cat([tiny_unet.encode_global(torch.zeros_like(tensors["global_latents"])), cond])
        shared = tiny_unet(x, case["timestep"], case["fps"], tokens)
        projected = tiny_unet(x, case["timestep"], case["fps"], tiny_unet.project_global_tokens(tokens))
        per_frame = tiny_unet(x, case["timestep"], case["fps"], tokens.repeat_interleave(16, dim=0))
    assert (shared - tensors[case["output"]]).abs().max() <= 1e-4
    assert (projected - shared).abs().max() <= 1e-5 and (per_frame - shared).abs().max() <= 1e-4
