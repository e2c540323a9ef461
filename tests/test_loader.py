"""Loading weights: every supported layout (M3DDM+ training checkpoints included), dtype casting, strict keys, wrong
and broken files, the model family."""
import json
import logging
import os

import pytest
import torch
from safetensors.torch import save_file

from conftest import DATA, MICRO_CONFIG, SHARED, shared_file
from m3ddm_core import FULL_SIZE_CONFIG, WeightsError, load_unet, parse_config
from m3ddm_core.model.config import read_config
from m3ddm_core.model.loader import detect_family, identify_foreign, resolve_weights, weights_family


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


def test_fp16_on_the_cpu_loads_and_says_it_is_slow(tmp_path, micro_state_dict, caplog):
    from m3ddm_core import load_model
    folder = _write_folder(tmp_path / "M3DDM", micro_state_dict, fmt="bin")
    for dtype, warned in (("fp16", True), ("fp32", False)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="M3DDM"):
            loaded = load_model(folder, dtype, "cpu")
        assert loaded.unet.dtype == (torch.float16 if warned else torch.float32)
        assert ("fp16 on the CPU is slow" in caplog.text) == warned, dtype


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
    from m3ddm_core.model.loader import resolve_weights
    path = tmp_path / "x.bin"
    torch.save({}, path)
    _, cfg, source = resolve_weights(path)
    assert cfg == FULL_SIZE_CONFIG and source == "the full-size default"


# --- M3DDM+ training checkpoints (PyTorch Lightning) --------------------------------------------------------------

PLUS = SHARED / "m3ddm_plus_reference"
CKPT_FACTS = json.loads((DATA / "m3ddm_plus_checkpoint.json").read_text())


@pytest.fixture(scope="module")
def plus_reference():
    """../shared/m3ddm_plus_reference: last.ckpt (9 MB) and the same UNet as tiny_unet/weights.safetensors."""
    shared_file(PLUS / "lightning_checkpoint" / "last.ckpt", "M3DDM+ checkpoint fixture")
    return PLUS


def _assert_equals_file(model, path):
    """Every parameter and buffer of ``model`` equals the stored tensor exactly (dtype included)."""
    from safetensors.torch import load_file
    want, got = load_file(str(path)), model.state_dict()
    assert set(got) == set(want) and len(got) == CKPT_FACTS["unet_keys"]
    for k, v in want.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def _write_lightning(path, unet_sd, extra=None, **top):
    """A checkpoint as LitM3DDM + Trainer.save_checkpoint lays it out (only the parts the loader looks at)."""
    sd = {f"model.unet.{k}": v for k, v in unet_sd.items()}
    sd.update(extra if extra is not None else {"model.vae.encoder.conv_in.weight": torch.ones(4, 3, 3, 3),
                                               "model.vae.decoder.conv_out.bias": torch.ones(3)})
    torch.save({"epoch": 0, "global_step": 1, "pytorch-lightning_version": "2.5.5", "state_dict": sd,
                "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}}], "hyper_parameters": {"lr": 1e-5},
                **top}, path)
    return path


def test_lightning_checkpoint_loads_strictly_as_the_tiny_unet(plus_reference, caplog):
    ckpt = plus_reference / "lightning_checkpoint" / "last.ckpt"
    with caplog.at_level(logging.INFO, logger="M3DDM"):
        model = load_unet(ckpt)  # the config.json training left beside it (with _diffusers_version) is used
    _assert_equals_file(model, plus_reference / "tiny_unet" / "weights.safetensors")
    report = [r.getMessage() for r in caplog.records if r.name == "M3DDM" and "training checkpoint" in r.getMessage()]
    assert len(report) == 1
    assert f"loading its {CKPT_FACTS['unet_keys']} model.unet.* keys" in report[0]
    assert CKPT_FACTS["ignored_log"] in report[0]


def test_lightning_checkpoint_folder_loads_and_is_m3ddm_plus(plus_reference):
    folder = plus_reference / "lightning_checkpoint"
    weights, cfg, source = resolve_weights(folder)
    assert weights.name == "last.ckpt" and source.endswith("config.json") and "_diffusers_version" in cfg
    _assert_equals_file(load_unet(folder, dtype=torch.float32), plus_reference / "tiny_unet" / "weights.safetensors")
    family, why = detect_family(folder)
    assert family == weights_family(folder) == "m3ddm_plus" and "model.unet.* keys" in why
    assert weights_family(plus_reference / "tiny_unet" / "weights.safetensors") == "m3ddm"  # no marker of any kind


def test_lightning_checkpoint_is_read_mapped_in_any_dtype(plus_reference, monkeypatch):
    # Reading a training checkpoint plainly would bring its VAE and optimizer states into memory: it stays mapped
    # even when every tensor is cast (a plain .bin in another dtype is read plainly instead).
    calls, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    model = load_unet(plus_reference / "lightning_checkpoint" / "last.ckpt", dtype=torch.bfloat16)
    assert calls and all(kw.get("mmap") and kw.get("weights_only") for kw in calls)
    assert model.conv_in.weight.dtype == torch.bfloat16


def test_lightning_checkpoint_of_any_extension_and_legacy_format(tmp_path, micro_state_dict, caplog):
    (tmp_path / "config.json").write_text(json.dumps(MICRO_CONFIG))
    extra = {"model.vae.encoder.conv_in.weight": torch.ones(2), "model.ema.shadow": torch.ones(2),
             "loss_weights": torch.ones(1), "model.vae.bad": torch.empty(3, device="meta")}
    for name, legacy in (("epoch=0-step=1.pt", False), ("trained.bin", True)):
        path = tmp_path / name
        sd = {"state_dict": {**{f"model.unet.{k}": v for k, v in micro_state_dict.items()}, **extra}}
        torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="M3DDM"):
            _assert_weights_equal(load_unet(path, dtype=torch.float16), micro_state_dict, torch.float16)
        text = caplog.text
        assert "ignored 1 keys of loss_weights, 1 keys of model.ema, 1 keys of model.vae (not part of the UNet)" in text
        assert "skipped 1 tensors without data (meta device)" in text


def test_lightning_checkpoint_missing_a_unet_key_names_it_unprefixed(tmp_path, micro_state_dict):
    sd = {k: v for k, v in micro_state_dict.items() if k != "conv_in.weight"}
    path = _write_lightning(tmp_path / "last.ckpt", sd)
    (tmp_path / "config.json").write_text(json.dumps(MICRO_CONFIG))
    with pytest.raises(WeightsError, match=r"1 missing keys \(first: conv_in.weight\)\.$"):
        load_unet(path)


def test_checkpoint_without_unet_is_named(tmp_path):
    path = _write_lightning(tmp_path / "vae_only.ckpt", {})
    with pytest.raises(WeightsError, match=r"is a training checkpoint without a UNet \(it holds model.vae; no "
                                           r"model.unet.\* keys\), not an M3DDM UNet"):
        load_unet(path)


def test_forged_checkpoint_is_refused_and_nothing_runs(tmp_path):
    marker = str(tmp_path / "code-ran")
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 1, "state_dict": {"model.unet.conv_in.weight": torch.zeros(1),
                                           "model.unet.conv_in.bias": _Payload(marker)}}, path)
    with pytest.raises(WeightsError, match="refused.*Nothing was executed.*convert_ckpt_to_bin"):
        load_unet(path)
    with pytest.raises(WeightsError, match="refused"):
        weights_family(path)
    assert not os.path.exists(marker)


def test_checkpoint_state_dict_with_a_plain_value_is_refused(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"model.unet.conv_in.weight": torch.zeros(1), "model.unet.step": 3}}, path)
    with pytest.raises(WeightsError, match="does not hold a flat state dict of tensors"):
        load_unet(path)


def _checkpoint_folder(folder, micro_state_dict, names):
    """Checkpoints whose conv_in.bias is filled with their index, to tell which one was loaded."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(MICRO_CONFIG))
    for i, name in enumerate(names):
        sd = dict(micro_state_dict, **{"conv_in.bias": torch.full_like(micro_state_dict["conv_in.bias"], i)})
        _write_lightning(folder / name, sd)
        os.utime(folder / name, (1e9 - i, 1e9 - i))  # the later names are older: the name's numbers decide
    return folder


@pytest.mark.parametrize("names, chosen, why", [
    (["epoch=0-step=500.ckpt", "last.ckpt", "epoch=9-step=5000.ckpt"], "last.ckpt", "latest state"),
    (["epoch=2-step=900.ckpt", "epoch=10-step=3000.ckpt", "epoch=9-step=2700.ckpt"], "epoch=10-step=3000.ckpt",
     "highest step"),
])
def test_folder_of_checkpoints_picks_last_then_highest_step(tmp_path, micro_state_dict, caplog, names, chosen, why):
    folder = _checkpoint_folder(tmp_path / "run", micro_state_dict, names)
    with caplog.at_level(logging.INFO, logger="M3DDM"):
        model = load_unet(folder)
    assert model.conv_in.bias.unique().tolist() == [names.index(chosen)]
    assert "holds 3 checkpoints" in caplog.text and f"using {chosen} (" in caplog.text and why in caplog.text


def test_standard_names_come_before_checkpoints(tmp_path, micro_state_dict):
    folder = _write_folder(tmp_path / "w", micro_state_dict)
    _write_lightning(folder / "last.ckpt", {})
    assert resolve_weights(folder)[0].name == "diffusion_pytorch_model.bin"


def test_unknown_config_keys_and_family_marker_pass_config_parsing(tmp_path, micro_state_dict):
    cfg = dict(MICRO_CONFIG, _diffusers_version="0.34.0", m3ddm_family="m3ddm_plus")
    folder = _write_folder(tmp_path / "converted", micro_state_dict, config=cfg)
    assert parse_config(read_config(folder / "config.json")) == parse_config(MICRO_CONFIG)
    _assert_weights_equal(load_unet(folder), micro_state_dict, torch.float32)
    assert detect_family(folder) == ("m3ddm_plus", f"'m3ddm_family' in {folder / 'config.json'}")


@pytest.mark.parametrize("folder, file, family", [
    ("M3DDM-Plus", "diffusion_pytorch_model.bin", "m3ddm_plus"),  # what the authors' convert_ckpt_to_bin.py leaves
    ("weights", "m3ddm+.bin", "m3ddm_plus"),
    ("models", "M3DDM_PLUS_fp16.safetensors", "m3ddm_plus"),
    ("M3DDM-Video-Outpainting", "diffusion_pytorch_model.bin", "m3ddm"),
])
def test_family_falls_back_to_the_name(tmp_path, micro_state_dict, folder, file, family):
    path = tmp_path / folder / file
    path.parent.mkdir()
    (path.parent / "config.json").write_text(json.dumps(MICRO_CONFIG))
    if file.endswith(".bin"):
        torch.save(micro_state_dict, path)
    else:
        save_file(micro_state_dict, str(path))
    assert weights_family(path) == family
    if file.startswith("diffusion_pytorch_model"):  # a loadable folder too
        assert weights_family(path.parent) == family


def test_family_marker_beats_the_name_and_is_checked(tmp_path, micro_state_dict):
    path = tmp_path / "m3ddm_plus_copy.safetensors"
    save_file(micro_state_dict, str(path), metadata={"m3ddm_family": "m3ddm"})
    assert detect_family(path) == ("m3ddm", f"the metadata of {path.name}")
    folder = _write_folder(tmp_path / "odd", micro_state_dict, config=dict(MICRO_CONFIG, m3ddm_family="plus"))
    with pytest.raises(WeightsError, match="'m3ddm_family' = 'plus'; expected one of m3ddm, m3ddm_plus"):
        weights_family(folder)


def test_find_weights_takes_the_first_root_that_has_the_name_and_never_leaves_the_roots(tmp_path):
    from m3ddm_core import find_weights
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "m").mkdir(parents=True)
    (b / "m").mkdir(parents=True)
    (b / "n.safetensors").write_bytes(b"")
    (tmp_path / "outside.safetensors").write_bytes(b"")
    assert find_weights([a, b], "m") == str(a / "m")
    assert find_weights([a, b], "n.safetensors") == str(b / "n.safetensors")
    assert find_weights([a, b], "gone") is None and find_weights([tmp_path / "none"], "m") is None
    assert find_weights([a], "../outside.safetensors") is None and find_weights([a], str(tmp_path / "b/m")) is None


def test_model_list_shows_checkpoint_folders(tmp_path, plus_reference, micro_state_dict):
    import importlib

    from m3ddm_core import find_weights

    from comfy_env import PLUGIN, load_plugin
    load_plugin()  # puts ComfyUI on sys.path (skips when it is not installed)
    import folder_paths
    runtime = importlib.import_module(f"{PLUGIN}.nodes.runtime")
    root = tmp_path / "m3ddm"
    plus = root / "M3DDM-Plus"  # as training leaves it: config.json + last.ckpt (linked: nothing big copied)
    plus.mkdir(parents=True)
    (plus / "config.json").write_text((plus_reference / "lightning_checkpoint" / "config.json").read_text())
    (plus / "last.ckpt").symlink_to(plus_reference / "lightning_checkpoint" / "last.ckpt")
    _checkpoint_folder(root / "run", micro_state_dict, ["epoch=0-step=10.ckpt", "epoch=1-step=20.ckpt"])
    _write_lightning(root / "single.ckpt", {})
    _write_folder(root / "converted", micro_state_dict, config=dict(MICRO_CONFIG, m3ddm_family="m3ddm_plus"))
    _write_lightning(root / "converted" / "last.ckpt", micro_state_dict)  # what convert_ckpt_to_bin.py left beside it
    save_file(micro_state_dict, str(root / "run" / "other.safetensors"))
    saved = folder_paths.folder_names_and_paths.get("m3ddm")
    folder_paths.folder_names_and_paths["m3ddm"] = ([str(root)], {".safetensors", ".bin", ".ckpt"})
    try:
        listed = runtime.list_models()
        assert listed == ["M3DDM-Plus", "M3DDM-Plus/last.ckpt", "converted", "converted/last.ckpt", "run",
                          "run/epoch=0-step=10.ckpt", "run/epoch=1-step=20.ckpt", "run/other.safetensors",
                          "single.ckpt"]
        model = load_unet(find_weights([str(root)], "M3DDM-Plus"))
        _assert_equals_file(model, plus_reference / "tiny_unet" / "weights.safetensors")
        assert load_unet(find_weights([str(root)], "run/epoch=0-step=10.ckpt")).conv_in.bias.unique().tolist() == [0]
        assert load_unet(find_weights([str(root)], "run")).conv_in.bias.unique().tolist() == [1]
    finally:
        folder_paths.folder_names_and_paths.pop("m3ddm", None)
        if saved is not None:
            folder_paths.folder_names_and_paths["m3ddm"] = saved


def test_load_model_takes_the_family_from_the_weights_or_as_given(tmp_path, micro_state_dict):
    from m3ddm_core import load_model

    plain = _write_folder(tmp_path / "M3DDM", micro_state_dict)
    plus = _write_folder(tmp_path / "M3DDM-Plus", micro_state_dict)
    auto = load_model(plain, "bf16")
    assert (auto.family, auto.why) == ("m3ddm", "from no M3DDM+ marker, checkpoint layout or name")
    _assert_weights_equal(auto.unet, micro_state_dict, torch.bfloat16)
    assert load_model(plus, torch.float32).family == "m3ddm_plus"  # 'plus' in the name
    given = load_model(plus, torch.float32, family="m3ddm")
    assert (given.family, given.why) == ("m3ddm", "chosen; the weights say m3ddm_plus")
    for bad, message in (({"family": "sd15"}, "family 'sd15' is unknown; choose auto, m3ddm, m3ddm_plus"),
                         ({"dtype": "fp8"}, "dtype 'fp8' is unknown; choose auto, fp16, bf16, fp32")):
        with pytest.raises(WeightsError, match=message):
            load_model(**{"path": plain, "dtype": torch.float32, **bad})
