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


COMFYUI_VERSIONS: set[str] = set()  # the ComfyUI servers the session ran, as they report themselves


def pytest_terminal_summary(terminalreporter):
    if COMFYUI_VERSIONS:
        terminalreporter.write_line(f"ComfyUI servers this run: {', '.join(sorted(COMFYUI_VERSIONS))}")


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """One real ComfyUI server for the whole session (tests/comfy_env.start_test_server), shared by the server,
    frontend and evaluation tests; each test queues its own prompts with its own output prefixes."""
    from comfy_env import start_test_server
    srv = start_test_server(tmp_path_factory.mktemp("comfy"))
    COMFYUI_VERSIONS.add(f"{srv.get('/system_stats')['system']['comfyui_version']} ({srv.comfy_dir})")
    yield srv
    srv.stop()
    artifacts = os.environ.get("M3DDM_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        import shutil
        shutil.copy(srv.log_path, Path(artifacts) / "comfyui_server.log")


@pytest.fixture(scope="session")
def _ray_session():
    yield
    import sys
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()


@pytest.fixture
def ray_cluster(_ray_session):
    """A local Ray cluster of 2 CPU workers with this checkout's m3ddm_core, started once and kept for the session
    (started again where a test shut it down, as the batch command's own --ray local run does)."""
    import importlib.util
    if importlib.util.find_spec("ray") is None:
        msg = "Ray is not installed: it is the optional extra, pip install '.[ray]' (scripts/setup_env.sh installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    import ray
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"py_modules": [str(REPO / "m3ddm_core")]})
    return ray


# Markers for running a part of the suite locally (pytest -m "not server and not browser", -m parity ...); CI runs
# every test. They follow what a test uses, so a new test is marked by the fixtures it takes.
PARITY_FIXTURES = {"tiny_unet", "tiny_cases", "tiny_weights_path", "plus_unet", "plus_reference"}
PARITY_MODULES = {"test_m3ddm_plus", "test_recordings"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        marks = set()
        if "comfy_server" in used:
            marks.add("server")
        if "browser" in used:
            marks.add("browser")
        if "ray_cluster" in used or module == "test_scaleout":
            marks.add("ray")
        if used & PARITY_FIXTURES or module in PARITY_MODULES or "official" in item.name:
            marks.add("parity")
        if marks & {"server", "browser", "ray"}:
            marks.add("slow")
        for name in sorted(marks):
            item.add_marker(getattr(pytest.mark, name))
