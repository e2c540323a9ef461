"""Recorded outputs of the four front-end paths, kept bit-equal across the engine redesign (issue 22).

The IMAGE path (Outpaint Canvas -> Sample Clip / Coarse-to-Fine), the VIDEO path (Outpaint Video), the batch
command and a Ray split video each ran once on the random nano model with fixed seeds, before the orchestration
moved into one plan and its executors; ``tests/data/recordings.json`` keeps the SHA-256 of their final latents and
decoded pixels. These tests say that a refactor changed nothing, not that the outputs are right: the parity tests
(``test_unet3d``, ``test_sampler``, ``test_schedule``, ``test_m3ddm_plus``) and the cross-path equality tests
(``test_video``, ``test_stream``, ``test_scaleout``) say that.

Inputs are lossless (PNG in MOV) and every run uses one torch thread (as each Ray worker does), so the figures do not
follow the encoder's or the thread pool's choices. They still follow the CPU: another vector width or BLAS path
rounds the last bits differently, so the digests hold per machine. The recordings are sets, one per machine, each
made with the reference commit's code by ``scripts/record_reference.py`` (never by the code under test); a run is
bit-equal to the set of a machine that computes as it does, and on a machine with no set of its own every recorded
value (a mean, a deviation and 64 values of each output) must be within a tolerance that a changed seed, pass
order or frame far exceeds.
"""
import asyncio
import hashlib
import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from comfy_env import REPO, load_plugin, taesd_vae
from conftest import NANO_CONFIG
from media_sources import picture

sys.path.insert(0, str(REPO / "scripts"))
from random_weights import write_random_m3ddm  # noqa: E402

RECORDINGS = Path(__file__).resolve().parent / "data" / "recordings.json"
HW = (120, 208)
# one attention head and a 128 working canvas (16x16 latents): the spatial attention is most of a nano pass
FAST_CONFIG = dict(NANO_CONFIG, attention_head_dim=1)
SIZE = dict(working_size=128)


def digest(t) -> str:
    a = t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else np.ascontiguousarray(t)
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


def values(t) -> list[float]:
    """The mean, the standard deviation and 64 evenly spaced values of ``t``: what a machine that computes floats
    its own way is compared on."""
    a = (t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float64)).ravel()
    return [float(a.mean()), float(a.std()), *map(float, a[np.linspace(0, a.size - 1, 64).round().astype(int)])]


def source_frames(n: int, cut: int | None = None) -> np.ndarray:
    """``n`` synthetic frames; from ``cut`` on, another scene (colours inverted, moving the other way)."""
    frames = [picture(i, *HW, seed=0) for i in range(n)]
    if cut is not None:
        frames[cut:] = [255 - picture(n - i, *HW, seed=1)[::-1] for i in range(cut, n)]
    return np.stack(frames)


def write_lossless(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("png", rate=fps)
        s.width, s.height, s.pix_fmt = HW[1], HW[0], "rgb24"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


@contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def far_values(expected: list[float], observed: list[float], pixels: bool) -> float:
    """The largest difference beyond the tolerance (0: all within): 2 levels for 8-bit pixels (rounding after a
    last-bit difference), else 1e-3 of the value's size."""
    e, o = np.asarray(expected), np.asarray(observed)
    over = np.abs(e - o) - (2.0 if pixels else 1e-3 * (1 + np.abs(e)))
    return float(max(over.max(), 0.0)) if e.shape == o.shape else float("inf")


def check(name: str, outputs: dict) -> None:
    """Compare ``outputs`` (key -> tensor or array; ``inputs`` the source frames) with the recordings ``name``:
    bit for bit with the recording of a machine that computes as this one does, else -- another CPU's kernels
    round differently, so no digest can match -- every recorded value within tolerance."""
    observed = {k: digest(v) for k, v in outputs.items()}
    sets = [s for s in json.loads(RECORDINGS.read_text())["sets"] if name in s["outputs"]]
    assert sets, f"no recording of {name} in {RECORDINGS}"
    sets = [s for s in sets if s["outputs"][name]["inputs"] == observed["inputs"]]
    if not sets:
        pytest.fail(f"{name}: the test inputs changed (another OpenCV/PyAV build draws or decodes them differently), "
                    "so the recordings say nothing; record again on the reference commit", pytrace=False)
    if any(s["outputs"][name] == {k: observed.get(k) for k in s["outputs"][name]} for s in sets):
        return  # bit-equal to one machine's recording
    differ = sorted(k for k in sets[0]["outputs"][name] if sets[0]["outputs"][name][k] != observed.get(k))
    measured = [s for s in sets if name in s.get("values", {})]
    assert measured, f"{name}: {differ} differ from the recording ({sets[0]['machine']})"
    recorded = measured[0]["values"][name]
    far = {k: far_values(v, values(outputs[k]), outputs[k].dtype in (np.uint8, torch.uint8))
           for k, v in recorded.items()}
    far = {k: d for k, d in far.items() if d > 0}
    assert not far, f"{name}: {sorted(far)} differ from every recording, beyond the tolerance by {far}"
    warnings.warn(f"{name}: {differ} are not bit-equal to a recording (this machine computes floats otherwise than "
                  f"{', '.join(s['machine'] for s in sets)}); every recorded value is within tolerance")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    plugin = load_plugin()
    ext = asyncio.run(plugin.comfy_entrypoint())
    classes = {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(ext.get_node_list())}
    import folder_paths
    root = tmp_path_factory.mktemp("recordings") / "m3ddm"
    write_random_m3ddm(root / "nano", FAST_CONFIG, seed=3)
    saved = folder_paths.folder_names_and_paths.get("m3ddm")
    folder_paths.folder_names_and_paths["m3ddm"] = ([str(root)], {".safetensors", ".bin"})
    yield classes
    if saved is None:
        folder_paths.folder_names_and_paths.pop("m3ddm", None)
    else:
        folder_paths.folder_names_and_paths["m3ddm"] = saved


def _run(cls, **kwargs):
    return cls.execute(**kwargs).result


CANVAS = dict(target="aspect ratio", aspect_ratio="9:16", width=0, height=0, pad_left=0.0, pad_right=0.0,
              pad_top=0.0, pad_bottom=0.0, canvas_mode="official")
SAMPLING = dict(scheduler="ddim", steps=2, context_guidance=2.0, global_guidance=4.0, seed=11, low_vram=False)


def test_image_path_matches_its_recording(nodes):
    frames_u8 = source_frames(40, cut=22)
    frames = torch.from_numpy(frames_u8).float() / 255.0
    vae = taesd_vae(seed=2)
    observed = {"inputs": frames_u8}
    with one_thread():
        (model,) = _run(nodes["M3DDM_LoadModel"], model_name="nano", dtype="fp32")
        canvas, *_ = _run(nodes["M3DDM_OutpaintCanvas"], images=frames, shots="list", cuts="22", **CANVAS, **SIZE)
        generated, latent = _run(nodes["M3DDM_CoarseToFine"], m3ddm_model=model, vae=vae, canvas=canvas, fps=25.0,
                                 strides="15,5,1", schedule="fixed", **SAMPLING)
        observed.update(c2f_latents=latent["samples"], c2f_generated=generated)
        (global_frames,) = _run(nodes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=canvas)
        clip, clip_images = _run(nodes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas,
                                 global_frames=global_frames, frame_indexes="0,3,6,9", guide=latent, fps=25.0,
                                 **dict(SAMPLING, seed=4, low_vram=True))
        observed.update(clip_latents=clip["samples"], clip_generated=clip_images)
        # M3DDM+ preprocessing at another working size, the official schedule, a guidance branch less
        plus, *_ = _run(nodes["M3DDM_OutpaintCanvas"], images=frames[:20], shots="none", cuts="",
                        preprocessing="m3ddm_plus", working_size=192, **CANVAS)
        generated, latent = _run(nodes["M3DDM_CoarseToFine"], m3ddm_model=model, vae=vae, canvas=plus, fps=30.0,
                                 strides="auto", schedule="official",
                                 **dict(SAMPLING, context_guidance=1.0, seed=5))
        observed.update(plus_latents=latent["samples"], plus_generated=generated)
    check("image_path", observed)


# one torch thread by design, so they lose nothing beside the server tests: these two run in that half of
# scripts/run_tests.sh (the image path stays with the rest, which keeps the halves about even)
@pytest.mark.one_thread
def test_video_path_matches_its_recording(nodes, tmp_path):
    from comfy_api.latest import InputImpl
    frames_u8 = source_frames(45, cut=24)
    video = InputImpl.VideoFromFile(str(write_lossless(tmp_path / "src.mov", frames_u8)))
    observed = {"inputs": frames_u8}
    inputs = dict(CANVAS, **SAMPLING, strides="15,5,1", schedule="fixed", feather=4, start_frame=3, frame_count=40,
                  **SIZE)
    with one_thread():
        (model,) = _run(nodes["M3DDM_LoadModel"], model_name="nano", dtype="fp32")
        (out,) = _run(nodes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=model, vae=taesd_vae(seed=2),
                      shots="detect", **dict(inputs, low_vram=True))
        observed.update(latents=out.outpainted.latents,
                        frames=np.stack(list(out.outpainted.frames())))
        # setups none: recorded before set-ups existed; cut 7 splits one continuous shot, which "auto" (the
        # default) rightly groups as one set-up -- tests/test_setups.py has what grouping does
        (out,) = _run(nodes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=model, vae=taesd_vae(seed=2),
                      shots="list", cuts="7", setups="none", **dict(inputs, seed=9))
        observed.update(listed_latents=out.outpainted.latents,
                        listed_frames=np.stack(list(out.outpainted.frames())))
    check("video_path", observed)


@pytest.fixture(scope="module")
def batch_assets(tmp_path_factory):
    from diffusers import AutoencoderKL
    root = tmp_path_factory.mktemp("recorded-batch")
    write_random_m3ddm(root / "m3ddm-nano", FAST_CONFIG, seed=3)
    torch.manual_seed(1)
    AutoencoderKL(block_out_channels=[8, 8, 8, 8], down_block_types=["DownEncoderBlock2D"] * 4,
                  up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=1, norm_num_groups=4,
                  latent_channels=4).save_pretrained(str(root / "vae"), safe_serialization=True)
    frames_u8 = source_frames(48, cut=30)
    (root / "in").mkdir()
    write_lossless(root / "in" / "edited.mov", frames_u8)
    return root, frames_u8


def _batch_spec(root):
    from m3ddm_core.apps.jobs import JobSpec
    from m3ddm_core.pipeline.passes import SampleSettings
    return JobSpec(str(root / "m3ddm-nano"), str(root / "vae"), "9:16",
                   SampleSettings(steps=2, scheduler="ddim"), seed=21, strides="15,5,1", shots="detect",
                   dtype="fp32", device="cpu", working_size=128)


@pytest.mark.one_thread
def test_batch_command_matches_its_recording(batch_assets, tmp_path):
    from m3ddm_core.apps.jobs import load_job, run_batch
    root, inputs = batch_assets
    found: dict = {}
    with one_thread(), torch.inference_mode():
        written, _, failed = run_batch(load_job(_batch_spec(root)), [root / "in" / "edited.mov"], tmp_path,
                                       show=False, latents=found)
    assert failed == [] and len(written) == 1
    check("batch", {"inputs": inputs, "latents": found[root / "in" / "edited.mov"]})


@pytest.mark.slow
def test_ray_split_video_matches_the_batch_recording(batch_assets, tmp_path, ray_cluster):
    from m3ddm_core import plan_video
    from m3ddm_core.apps.scaleout import run_batch_ray
    root, inputs = batch_assets
    found: dict = {}
    labels: list = []
    written, _, failed = run_batch_ray(_batch_spec(root), [root / "in" / "edited.mov"], tmp_path, workers=2,
                                       threads=1, split_frames=1, show=False, latents=found,
                                       on_dispatch=lambda pid, label: labels.append(label))
    assert failed == [] and len(written) == 1
    assert any("shot 2" in label for label in labels)  # split at the detected cut, passes across the workers
    # (bit for bit with one pass a task; tests/test_scaleout.py has two passes a task, the folder and a lost worker)
    assert labels[0].endswith("encode") and labels[-1].endswith("write")
    assert sum(label.count("pass") for label in labels) == len(plan_video(48, [30], "15,5,1"))  # each pass once
    check("batch", {"inputs": inputs, "latents": found[root / "in" / "edited.mov"]})


def test_a_machine_without_a_set_of_its_own_is_held_to_the_recorded_values(tmp_path, monkeypatch):
    frames = np.arange(600, dtype=np.uint8).reshape(2, 10, 10, 3)
    latents = torch.linspace(-2, 2, 500).reshape(5, 4, 5, 5)
    other = {"inputs": digest(frames), "latents": "0" * 64, "frames": "0" * 64}  # another CPU's digests
    sets = [{"machine": "another CPU", "outputs": {"path": other},
             "values": {"path": {"latents": values(latents), "frames": values(frames)}}}]
    monkeypatch.setattr(sys.modules[__name__], "RECORDINGS", tmp_path / "recordings.json")
    (tmp_path / "recordings.json").write_text(json.dumps({"sets": sets}))
    with pytest.warns(UserWarning, match="not bit-equal to a recording.*within tolerance"):
        check("path", {"inputs": frames, "latents": latents + 1e-6, "frames": frames})
    for changed, message in (({"latents": latents + 0.05}, r"\['latents'\] differ from every recording"),
                             ({"latents": latents.flip(0)}, r"\['latents'\] differ from every recording"),
                             ({"frames": frames + 3}, r"\['frames'\] differ from every recording")):
        with pytest.raises(AssertionError, match=message):
            check("path", {"inputs": frames, "latents": latents, "frames": frames, **changed})
    sets.append({"machine": "this CPU", "outputs": {"path": dict(other, latents=digest(latents),
                                                                 frames=digest(frames))}})
    (tmp_path / "recordings.json").write_text(json.dumps({"sets": sets}))
    check("path", {"inputs": frames, "latents": latents, "frames": frames})  # bit-equal: no warning, no tolerance
    with pytest.raises(pytest.fail.Exception, match="the test inputs changed"):
        check("path", {"inputs": frames[:1], "latents": latents, "frames": frames})
