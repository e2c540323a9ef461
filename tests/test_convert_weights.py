"""The .bin/.ckpt -> .safetensors converter round trip: once through the command line as a user runs it (a
subprocess), the other cases through the same entry point's ``main`` in-process."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import DATA, MICRO_CONFIG, REPO, SHARED, shared_file
from m3ddm_core import WeightsError, load_unet
from m3ddm_core.apps.convert_weights import convert, main
from m3ddm_core.model.loader import detect_family, weights_family


def test_bin_folder_converts_and_round_trips(tmp_path, micro_state_dict):
    src = tmp_path / "official"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(MICRO_CONFIG))
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in micro_state_dict.items()},
               src / "diffusion_pytorch_model.bin")
    out = tmp_path / "elsewhere" / "m3ddm.safetensors"
    run = subprocess.run([sys.executable, "-m", "m3ddm_core.convert_weights", str(src), str(out)], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and out.is_file()
    with safe_open(str(out), framework="pt") as fh:
        assert json.loads(fh.metadata()["m3ddm_config"]) == MICRO_CONFIG  # no sibling config.json needed
        assert fh.get_tensor("conv_in.weight").dtype == torch.float16  # dtype kept by default
    a = load_unet(src, dtype=torch.float32).state_dict()
    b = load_unet(out, dtype=torch.float32).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _convert(capsys, caplog, *args) -> tuple[int, str, str]:
    """``python -m m3ddm_core.convert_weights ARGS`` in-process: exit status, stdout, stderr with the log."""
    with caplog.at_level("INFO", logger="M3DDM"):
        code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err + caplog.text


def test_converter_refuses_bad_input_and_writes_nothing(tmp_path, capsys, caplog):
    src = tmp_path / "vae.bin"
    torch.save({"encoder.conv_in.weight": torch.zeros(2), "decoder.conv_in.weight": torch.zeros(2)}, src)
    out = tmp_path / "out.safetensors"
    code, _, err = _convert(capsys, caplog, src, out)
    assert code == 2 and "is a VAE, not an M3DDM UNet" in err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def _plus_reference():
    """../shared/m3ddm_plus_reference: last.ckpt (9 MB) and the same UNet as tiny_unet/weights.safetensors."""
    plus = SHARED / "m3ddm_plus_reference"
    shared_file(plus / "lightning_checkpoint" / "last.ckpt", "M3DDM+ checkpoint fixture")
    return plus


def test_lightning_checkpoint_converts_to_the_tiny_unet_and_stays_m3ddm_plus(tmp_path, capsys, caplog):
    plus = _plus_reference()
    out = tmp_path / "elsewhere" / "unet.safetensors"  # a name and folder that say nothing about M3DDM+
    ckpt = plus / "lightning_checkpoint" / "last.ckpt"
    code, stdout, err = _convert(capsys, caplog, ckpt, out)
    assert code == 0 and "wrote" in stdout, err
    facts = json.loads((DATA / "m3ddm_plus_checkpoint.json").read_text())
    assert facts["ignored_log"] in err
    assert "'last.ckpt' is m3ddm_plus (the training-checkpoint layout" in err
    want = load_file(str(plus / "tiny_unet" / "weights.safetensors"))
    got = load_file(str(out))
    assert set(got) == set(want) and len(got) == facts["unet_keys"]
    assert all(got[k].dtype == v.dtype and torch.equal(got[k], v) for k, v in want.items())
    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["m3ddm_family"] == "m3ddm_plus"
    assert json.loads(meta["m3ddm_config"]) == json.loads((plus / "lightning_checkpoint" / "config.json").read_text())
    back = load_unet(out).state_dict()  # no config.json beside it: the stored one
    assert all(torch.equal(back[k], v) for k, v in want.items())
    assert detect_family(out) == ("m3ddm_plus", "the metadata of unet.safetensors")


def test_converted_family_follows_detection_or_the_flag(tmp_path, micro_state_dict):
    src = tmp_path / "M3DDM-Plus"  # the authors' convert_ckpt_to_bin.py output: no marker but the folder name
    src.mkdir()
    (src / "config.json").write_text(json.dumps(dict(MICRO_CONFIG, _diffusers_version="0.34.0")))
    torch.save(micro_state_dict, src / "diffusion_pytorch_model.bin")
    assert weights_family(convert(src, tmp_path / "a.safetensors")) == "m3ddm_plus"
    plain = tmp_path / "official"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps(dict(MICRO_CONFIG, m3ddm_family="m3ddm")))
    torch.save(micro_state_dict, plain / "diffusion_pytorch_model.bin")
    assert weights_family(convert(plain, tmp_path / "b.safetensors")) == "m3ddm"
    # the flag overrides detection, and the stored config does not contradict the stored family
    out = convert(plain, tmp_path / "m3ddm_c.safetensors", family="m3ddm_plus")
    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
    assert json.loads(meta["m3ddm_config"])["m3ddm_family"] == meta["m3ddm_family"] == "m3ddm_plus"
    with pytest.raises(WeightsError, match="family 'plus'"):
        convert(plain, tmp_path / "d.safetensors", family="plus")


def test_converter_refuses_a_checkpoint_without_unet(tmp_path, capsys, caplog):
    src = tmp_path / "last.ckpt"
    torch.save({"epoch": 3, "state_dict": {"model.vae.encoder.conv_in.weight": torch.zeros(2)}}, src)
    out = tmp_path / "out.safetensors"
    code, _, err = _convert(capsys, caplog, src, out)
    assert code == 2 and "training checkpoint without a UNet (it holds model.vae" in err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
