"""Loading weights: every supported layout, dtype casting, strict keys, wrong and broken files."""
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from conftest import MICRO_CONFIG
from m3ddm_core import FULL_SIZE_CONFIG, WeightsError, load_unet
from m3ddm_core.loader import identify_foreign


def _write_folder(path, sd, config=MICRO_CONFIG, fmt="bin", dtype=torch.float16):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    if fmt == "bin":
        torch.save(sd, path / "diffusion_pytorch_model.bin")
    else:
        save_file(sd, str(path / "diffusion_pytorch_model.safetensors"))
    return path


def _assert_weights_equal(model, sd, dtype):
    loaded = model.state_dict()
    assert list(loaded) == list(sd)
    for k, v in sd.items():
        want = v.to(torch.float16).to(dtype) if v.is_floating_point() else v
        assert loaded[k].dtype == want.dtype, k
        assert torch.equal(loaded[k], want), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_official_fp16_bin_folder_loads_in_requested_dtype(tmp_path, micro_state_dict, dtype):
    folder = _write_folder(tmp_path / "M3DDM", micro_state_dict, fmt="bin")
    model = load_unet(folder, dtype=dtype)
    _assert_weights_equal(model, micro_state_dict, dtype)
    assert model.global_img_encoder.resnet_layer[0].layers[0].shortcut.normalization.num_batches_tracked.dtype == torch.int64
    assert not model.training
    # runs
    ctx = model.encode_global(torch.randn(16, 4, 32, 32, dtype=dtype))
    out = model(torch.randn(1, 9, 2, 8, 8, dtype=dtype), 999, 8, ctx)
    assert out.shape == (1, 4, 2, 8, 8) and torch.isfinite(out).all()


def test_safetensors_folder_and_diffusers_unet_subfolder(tmp_path, micro_state_dict):
    _write_folder(tmp_path / "repo" / "unet", micro_state_dict, fmt="safetensors")
    model = load_unet(tmp_path / "repo", dtype=torch.float16)  # the repo root, weights in unet/
    _assert_weights_equal(model, micro_state_dict, torch.float16)


def test_single_safetensors_with_sibling_config(tmp_path, micro_state_dict):
    folder = _write_folder(tmp_path / "w", micro_state_dict, fmt="safetensors")
    single = folder / "diffusion_pytorch_model.safetensors"
    renamed = folder / "m3ddm_plus.safetensors"
    single.rename(renamed)
    _assert_weights_equal(load_unet(renamed, dtype=torch.float32), micro_state_dict, torch.float32)


def test_single_file_without_config_uses_full_size_default(tmp_path, micro_state_dict):
    path = tmp_path / "lonely.safetensors"
    save_file(micro_state_dict, str(path))
    with pytest.raises(WeightsError, match="shape mismatches.*config.json next to the weights"):
        load_unet(path)


def test_load_on_meta_config_and_default_device(tmp_path, micro_state_dict):
    folder = _write_folder(tmp_path / "w", micro_state_dict)
    model = load_unet(folder, dtype=torch.float32, device="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_missing_path_says_where_to_put_and_download(tmp_path):
    with pytest.raises(WeightsError, match="models/m3ddm.*Hugging Face"):
        load_unet(tmp_path / "nope")


def test_folder_without_weights_lists_its_content(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(WeightsError, match="no weights file.*readme.txt"):
        load_unet(tmp_path / "empty")


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_truncated_file_is_named(tmp_path, micro_state_dict, fmt):
    folder = _write_folder(tmp_path / "w", micro_state_dict, fmt=fmt)
    weights = next(folder.glob("diffusion_pytorch_model.*"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=f"{weights.name}' is truncated or corrupt"):
        load_unet(folder)


def test_missing_and_unexpected_keys_are_counted_and_listed(tmp_path, micro_state_dict):
    sd = dict(micro_state_dict)
    del sd["conv_in.weight"], sd["conv_out.temporal_conv.bias"]
    sd["extra.weight"] = torch.zeros(1)
    folder = _write_folder(tmp_path / "w", sd)
    with pytest.raises(WeightsError, match=r"2 missing keys \(first: conv_in.weight, conv_out.temporal_conv.bias\); "
                                           r"1 unexpected keys \(first: extra.weight\)"):
        load_unet(folder)


@pytest.mark.parametrize("keys, kind", [
    ({"conv_in.weight": (320, 4, 3, 3), "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight": (320, 320)},
     "a Stable Diffusion UNet"),
    ({"encoder.conv_in.weight": (128, 3, 3, 3), "decoder.conv_out.weight": (3, 128, 3, 3), "quant_conv.weight": (8, 8, 1, 1)},
     "a VAE"),
    ({"down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight": (320, 320)}, "an AnimateDiff motion module"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)}, "a full Stable Diffusion checkpoint"),
])
def test_foreign_files_are_recognised(tmp_path, keys, kind):
    path = tmp_path / "foreign.safetensors"
    save_file({k: torch.zeros(s) for k, s in keys.items()}, str(path))
    with pytest.raises(WeightsError, match=f"is {kind}.*not an M3DDM UNet"):
        load_unet(path)


def test_micro_state_dict_is_not_misidentified(micro_state_dict):
    assert identify_foreign(micro_state_dict) is None


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_with_objects_is_refused_and_nothing_runs(tmp_path):
    marker = str(tmp_path / "code-ran")
    path = tmp_path / "evil.bin"
    torch.save({"conv_in.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="refused.*Nothing was executed"):
        load_unet(path)
    assert not os.path.exists(marker)


def test_bad_config_in_folder_names_the_field(tmp_path, micro_state_dict):
    folder = _write_folder(tmp_path / "w", micro_state_dict, config=dict(MICRO_CONFIG, cross_attention_dim=768))
    with pytest.raises(WeightsError, match="'cross_attention_dim'"):
        load_unet(folder)


def test_full_size_default_is_used_for_a_lone_file(tmp_path):
    from m3ddm_core.loader import resolve_weights
    path = tmp_path / "x.bin"
    torch.save({}, path)
    _, cfg, source = resolve_weights(path)
    assert cfg == FULL_SIZE_CONFIG and source == "the full-size default"
