"""The .bin -> .safetensors converter round trip, through the command line as a user runs it."""
import json
import subprocess
import sys

import torch
from safetensors import safe_open

from conftest import MICRO_CONFIG, REPO
from m3ddm_core import load_unet


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


def test_converter_refuses_bad_input_and_writes_nothing(tmp_path):
    src = tmp_path / "vae.bin"
    torch.save({"encoder.conv_in.weight": torch.zeros(2), "decoder.conv_in.weight": torch.zeros(2)}, src)
    out = tmp_path / "out.safetensors"
    run = subprocess.run([sys.executable, "-m", "m3ddm_core.convert_weights", str(src), str(out)], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 2 and "is a VAE, not an M3DDM UNet" in run.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
