"""Access to the real ComfyUIs installed by scripts/setup_env.sh, for node and server tests: the current release
0.33.0 (in .comfyui/0.33.0, the main target: node tests import it, the session's server runs it) and the floor
0.3.75 (in .comfyui/0.3.75: tests/test_floor.py runs every shipped workflow on it through its own frontend).

The plugin is imported as the package ``comfyui_m3ddm`` (as ComfyUI would import it from custom_nodes), so its
``nodes`` subpackage does not shadow ComfyUI's own top-level ``nodes`` module.
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMFY_DIR = Path(os.environ.get("M3DDM_COMFYUI_DIR", REPO / ".comfyui" / "0.33.0")).resolve()
FLOOR_COMFY_DIR = Path(os.environ.get("M3DDM_FLOOR_COMFYUI_DIR", REPO / ".comfyui" / "0.3.75")).resolve()
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


# -- the session's ComfyUI server ----------------------------------------------------------------------------------
WORKFLOWS = REPO / "workflows"
DEMO_CLIP = WORKFLOWS / "media" / "m3ddm_demo_clip.mp4"
TEST_MODEL = "m3ddm-nano-random"
TEST_UPSCALER = "tiny_compact_x2.safetensors"
# Model files the workflows name, by loader node type -> model folder. The server gets empty files of these names
# so that its loaders list them: newer frontends check widget values against the server's model lists and report
# absent files as issues ("vae-ft-mse-840000-ema-pruned.safetensors is missing"), as they should for a user without
# them. The tests that run prompts override those names with the real test models.
WORKFLOW_MODEL_FOLDERS = {"VAELoader": "vae", "UpscaleModelLoader": "upscale_models"}


def _workflow_model_files() -> list[tuple[str, str]]:
    import json
    import re
    model_file = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|sft)$")
    found = []
    for path in sorted(WORKFLOWS.glob("*.json")):
        for node in json.loads(path.read_text())["nodes"]:
            names = [v for v in node.get("widgets_values") or [] if isinstance(v, str) and model_file.search(v)]
            if names and node["type"] not in WORKFLOW_MODEL_FOLDERS:
                raise AssertionError(f"{path.name}: add {node['type']}'s model folder to WORKFLOW_MODEL_FOLDERS")
            found += [(WORKFLOW_MODEL_FOLDERS[node["type"]], n) for n in names]
    return found


def start_test_server(work: Path, comfy_dir: Path = COMFY_DIR, front_end_root: Path | None = None):
    """A real ComfyUI server with this plugin linked in, its own folders under ``work`` and real test models: the
    random nano M3DDM (``TEST_MODEL``), the core 'taesd' VAE with random weights, a tiny random x2 upscaler, plus
    empty files of the model names the shipped workflows store; the demo clip in its input folder. ``comfy_dir``:
    which ComfyUI (default the current release; ``FLOOR_COMFY_DIR`` the floor), ``front_end_root``: a frontend web
    root to serve instead of the venv's package (the floor's own release)."""
    import shutil
    import sys as _sys
    require_comfyui()
    if str(REPO / "scripts") not in _sys.path:
        _sys.path.insert(0, str(REPO / "scripts"))
    from comfy_harness import ComfyServer
    from random_weights import NANO_CONFIG, write_random_m3ddm, write_random_taesd, write_random_upscaler
    if not (Path(comfy_dir) / "main.py").is_file():
        msg = f"ComfyUI not installed at {comfy_dir}; run bash scripts/setup_env.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    srv = ComfyServer(_sys.executable, comfy_dir, work, front_end_root=front_end_root, user_directory=work / "user")
    srv.prepare()
    write_random_m3ddm(srv.models / "m3ddm" / TEST_MODEL, NANO_CONFIG)
    write_random_taesd(srv.models)
    write_random_upscaler(srv.models / "upscale_models" / TEST_UPSCALER)
    for folder, name in _workflow_model_files():
        if not (srv.models / folder / name).exists():
            (srv.models / folder / name).touch()
    shutil.copy(DEMO_CLIP, srv.input / DEMO_CLIP.name)
    srv.start()
    return srv
