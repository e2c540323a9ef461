import json
import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings as hypothesis_settings

# CI explores the same examples every run (reproducible); local runs keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    hypothesis_settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("M3DDM_SHARED", REPO.parent / "shared"))
TINY_WEIGHTS = SHARED / "m3ddm_reference" / "tiny_unet" / "weights.safetensors"

# A very small config of the same architecture for loader tests (the global encoder is fixed-size).
MICRO_CONFIG = dict(json.loads((DATA / "full_size_config.json").read_text()),
                    block_out_channels=[16, 32, 32, 32], norm_num_groups=8, sample_size=16)
# Smaller still, for node and server tests where only the plumbing matters.
NANO_CONFIG = dict(MICRO_CONFIG, block_out_channels=[8, 8, 8, 8], norm_num_groups=4)


def _shared_required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("M3DDM_REQUIRE_SHARED") == "1"


def shared_file(path: Path, what: str) -> Path:
    """``path`` (a file of ../shared, not copied into the repo): skipped with the reason where ../shared is
    absent, a failure where it is required (CI)."""
    if not path.exists():
        msg = f"{what} not found at {path} (../shared is absent)"
        if _shared_required():
            pytest.fail(msg + "; CI requires it")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def tiny_weights_path() -> Path:
    """The recorded tiny-UNet weights in ../shared (25 MB, not copied into the repo)."""
    return shared_file(TINY_WEIGHTS, "tiny-UNet fixture weights")


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    return json.loads((DATA / "tiny_unet_config.json").read_text())


@pytest.fixture(scope="session")
def tiny_unet(tiny_weights_path, tiny_config):
    from safetensors.torch import load_file
    from m3ddm_core import build_unet
    model = build_unet(tiny_config)
    model.load_state_dict(load_file(str(tiny_weights_path)), strict=True)
    return model


@pytest.fixture(scope="session")
def tiny_cases():
    from safetensors.torch import load_file
    return load_file(str(DATA / "tiny_unet_cases.safetensors")), json.loads((DATA / "tiny_unet_cases.json").read_text())


@pytest.fixture(scope="session")
def micro_state_dict():
    """Random weights of MICRO_CONFIG (seeded), as an official checkpoint would store them."""
    from m3ddm_core import build_unet
    torch.manual_seed(0)
    model = build_unet(MICRO_CONFIG)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def micro_model():
    """A seeded random-weight MICRO_CONFIG UNet for whole-video pipeline tests."""
    from m3ddm_core import build_unet
    torch.manual_seed(0)
    return build_unet(MICRO_CONFIG)


@pytest.fixture(scope="module")
def plan():
    """The shipped 208x120 clip -> 9:16 portrait, on a 128-px canvas to keep CPU tests fast."""
    from m3ddm_core import plan_canvas
    return plan_canvas((120, 208), ratio="9:16", canvas_size=128)
