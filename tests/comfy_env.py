"""Access to the real ComfyUI 0.3.75 installed by scripts/setup_env.sh (in .comfyui), for node tests.

The plugin is imported as the package ``comfyui_m3ddm`` (as ComfyUI would import it from custom_nodes), so its
``nodes`` subpackage does not shadow ComfyUI's own top-level ``nodes`` module.
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMFY_DIR = Path(os.environ.get("M3DDM_COMFYUI_DIR", REPO / ".comfyui")).resolve()
PLUGIN = "comfyui_m3ddm"


def require_comfyui() -> Path:
    if not (COMFY_DIR / "main.py").is_file():
        msg = f"ComfyUI not installed at {COMFY_DIR}; run bash scripts/setup_env.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    if str(COMFY_DIR) not in sys.path:
        sys.path.insert(0, str(COMFY_DIR))
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # before comfy.model_management is imported: no CUDA probing
    return COMFY_DIR


def load_plugin():
    require_comfyui()
    if PLUGIN in sys.modules:
        return sys.modules[PLUGIN]
    spec = importlib.util.spec_from_file_location(PLUGIN, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PLUGIN] = module
    spec.loader.exec_module(module)
    return module


def random_taesd_state_dicts(seed: int = 0):
    """Random-weight TAESD encoder/decoder state dicts (the core 'taesd' VAE choice, small and fast)."""
    require_comfyui()
    if str(REPO / "scripts") not in sys.path:
        sys.path.insert(0, str(REPO / "scripts"))
    from random_weights import random_taesd_state_dicts as make
    return make(seed)


def taesd_vae(seed: int = 0):
    """A real comfy.sd.VAE built the way core Load VAE builds the 'taesd' choice, with random weights."""
    import torch
    import comfy.sd
    enc, dec = random_taesd_state_dicts(seed)
    sd = {f"taesd_encoder.{k}": v for k, v in enc.items()}
    sd.update({f"taesd_decoder.{k}": v for k, v in dec.items()})
    sd["vae_scale"] = torch.tensor(0.18215)
    sd["vae_shift"] = torch.tensor(0.0)
    return comfy.sd.VAE(sd=sd)
