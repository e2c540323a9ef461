"""Random-weight model files of the right architectures, written at run time (the repo ships no weights):
an M3DDM UNet of any size, the SD1 TAESD encoder/decoder pair that core Load VAE offers as 'taesd', and a tiny
2x upscale model. Used by the demo without real weights and by the tests. Needs the installed ComfyUI on
sys.path for TAESD (ComfyUI's own class) and spandrel (a ComfyUI requirement)."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from m3ddm_core import FULL_SIZE_CONFIG

# The smallest config of the M3DDM architecture: the plumbing of benchmarks that do not measure the model.
NANO_CONFIG = dict(FULL_SIZE_CONFIG, block_out_channels=[8, 8, 8, 8], norm_num_groups=4, sample_size=16)


def write_random_m3ddm(folder: Path, config: dict, seed: int = 0) -> Path:
    """``folder/config.json`` + ``folder/diffusion_pytorch_model.safetensors`` (the Hugging Face layout)."""
    from m3ddm_core import build_unet
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    torch.manual_seed(seed)
    save_file(build_unet(config).state_dict(), str(folder / "diffusion_pytorch_model.safetensors"))
    return folder


def random_taesd_state_dicts(seed: int = 0) -> tuple[dict, dict]:
    """Encoder and decoder state dicts of ComfyUI's SD1 TAESD with random (initialised) weights."""
    from comfy.taesd.taesd import TAESD
    torch.manual_seed(seed)
    model = TAESD(latent_channels=4)
    with torch.no_grad():  # comfy.ops layers skip initialisation: give every weight a real (random) value
        for name, p in model.named_parameters():
            if p.ndim > 1:
                torch.nn.init.kaiming_uniform_(p, a=5 ** 0.5)
            elif name.endswith("bias"):
                p.zero_()
    enc = {k: v.clone().contiguous() for k, v in model.taesd_encoder.state_dict().items()}
    dec = {k: v.clone().contiguous() for k, v in model.taesd_decoder.state_dict().items()}
    return enc, dec


def write_random_taesd(models: Path, seed: int = 0) -> None:
    """``models/vae_approx/taesd_{encoder,decoder}.safetensors``: core Load VAE then offers 'taesd'."""
    enc, dec = random_taesd_state_dicts(seed)
    (models / "vae_approx").mkdir(parents=True, exist_ok=True)
    save_file(enc, str(models / "vae_approx" / "taesd_encoder.safetensors"))
    save_file(dec, str(models / "vae_approx" / "taesd_decoder.safetensors"))


def write_random_upscaler(path: Path, seed: int = 0) -> Path:
    """A RealESRGAN-compact 2x model with random weights (spandrel, hence core Load Upscale Model, accepts it)."""
    torch.manual_seed(seed)
    srvgg = importlib.import_module("spandrel.architectures.Compact.__arch.SRVGG")
    model = srvgg.SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2, act_type="prelu")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(path))
    return path
