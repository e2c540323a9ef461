"""Scale-out on Ray (a local cluster of 2 CPU workers, the random nano model): videos spread over workers and a
long video's clips in parallel give the in-process result bit for bit; a worker killed mid-run costs nothing."""
import importlib.util
import os
import signal
import sys
import threading
from fractions import Fraction

import numpy as np
import pytest
import torch

from comfy_env import REPO
from conftest import NANO_CONFIG

# one attention head: the 1024-token spatial attention is most of a nano pass on one thread (8x less of it)
SCALE_CONFIG = dict(NANO_CONFIG, attention_head_dim=1)
from helpers import load_clip
from m3ddm_core import VideoWriter, probe, read_frames
from m3ddm_core.apps.batch import main
from m3ddm_core.apps.jobs import JobSpec, load_job, output_path, run_batch
from m3ddm_core.pipeline.schedule import plan_passes
from m3ddm_core.pipeline.passes import SampleSettings

sys.path.insert(0, str(REPO / "scripts"))
from random_weights import write_random_m3ddm  # noqa: E402

if importlib.util.find_spec("ray") is None:
    MISSING = "Ray is not installed: it is the optional extra, pip install '.[ray]' (scripts/setup_env.sh installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(MISSING, pytrace=False)
    pytest.skip(MISSING, allow_module_level=True)
import ray  # noqa: E402

WORKERS = 2


@pytest.fixture
def cluster(ray_cluster):
    return ray_cluster


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from diffusers import AutoencoderKL
    root = tmp_path_factory.mktemp("scaleout")
    write_random_m3ddm(root / "m3ddm-nano", SCALE_CONFIG)
    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=[8, 8, 8, 8], down_block_types=["DownEncoderBlock2D"] * 4,
                  up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=1, norm_num_groups=4,
                  latent_channels=4).save_pretrained(str(root / "vae"), safe_serialization=True)
    frames = (load_clip(64) * 255).round().to(torch.uint8).numpy()
    for folder, names in (("short", [("a.mp4", 20), ("b.mp4", 12), ("c.mp4", 17)]), ("long", [("long.mp4", 64)])):
        (root / folder).mkdir()
        for name, n in names:
            with VideoWriter(root / folder / name, Fraction(25), 208, 120) as w:
                for f in frames[:n]:
                    w.write(f)
    return root


def _spec(assets) -> JobSpec:
    return JobSpec(str(assets / "m3ddm-nano"), str(assets / "vae"), "9:16",
                   SampleSettings(steps=1, scheduler="ddim"), seed=5, strides="15,5,1", working_size=128)


def _videos(assets):
    return sorted((assets / "short").iterdir()) + [assets / "long" / "long.mp4"]


@pytest.fixture(scope="module")
def reference(assets, tmp_path_factory):
    """The in-process batch of every test video (one torch thread, as each worker runs): latents and outputs."""
    out = tmp_path_factory.mktemp("in-process")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        found: dict = {}
        with torch.inference_mode():
            assert run_batch(load_job(_spec(assets)), _videos(assets), out, show=False, latents=found)[2] == []
        return found, out
    finally:
        torch.set_num_threads(threads)


def _frames(path):
    return np.stack(list(read_frames(path)))


def _same_video(a, b) -> None:
    """Equal latents make equal frames; the H.264 files differ only by x264's encoding choices, which follow the
    number of CPUs the writing process may use (measured: another affinity, another bitstream of the same frames)."""
    x, y = _frames(a).astype(np.float64), _frames(b).astype(np.float64)
    assert x.shape == y.shape
    psnr = 10 * np.log10(255 ** 2 / max(np.mean((x - y) ** 2), 1e-12))
    assert psnr > 30, f"{a} vs {b}: {psnr:.1f} dB"


@pytest.mark.slow
def test_a_folder_on_two_workers_equals_the_in_process_batch(cluster, assets, reference, tmp_path):
    from m3ddm_core.apps.scaleout import run_batch_ray
    spec = _spec(assets)
    videos = sorted((assets / "short").iterdir())
    dispatched = []
    found: dict = {}
    written, skipped, failed = run_batch_ray(spec, videos, tmp_path / "ray", workers=WORKERS, show=False,
                                             latents=found, on_dispatch=lambda pid, label: dispatched.append(pid))
    assert (len(written), skipped, failed) == (3, [], [])
    assert len(set(dispatched)) == WORKERS  # both workers took videos
    latents, local = reference
    for video in videos:
        assert torch.equal(found[video], latents[video]), video.name  # bit for bit
        a, b = output_path(video, tmp_path / "ray", "9:16"), output_path(video, local, "9:16")
        assert probe(a).frames == probe(video).frames
        _same_video(a, b)


def _split_long_video(spec: JobSpec, assets, out) -> tuple[torch.Tensor, list[str]]:
    """The long test video run clip-parallel on the workers: its latents and the labels of the tasks handed out."""
    from m3ddm_core.apps.scaleout import run_batch_ray
    video = assets / "long" / "long.mp4"
    labels = []
    found: dict = {}
    written, _, failed = run_batch_ray(spec, [video], out, workers=WORKERS, split_frames=1, show=False,
                                       latents=found, on_dispatch=lambda pid, label: labels.append(label))
    assert (written, failed) == ([video], [])
    return found[video], labels


@pytest.mark.slow
def test_ready_passes_handed_out_together_are_sampled_together(cluster, assets, reference, tmp_path):
    """--passes-per-call 2: when more passes are ready than there are workers, a worker gets two at once and
    samples them in one UNet call per step; the video equals the sequential one within float rounding."""
    import dataclasses

    found, labels = _split_long_video(dataclasses.replace(_spec(assets), passes_per_call=2), assets, tmp_path / "ray")
    tasks = [lb for lb in labels if "pass" in lb]
    assert labels[0].endswith("encode") and labels[-1].endswith("write")  # encoded once, written once, by a worker
    assert any(lb.count("pass") == 2 for lb in tasks)  # two passes in one task
    assert sum(lb.count("pass") for lb in tasks) == len(plan_passes(64, "15,5,1"))
    latents = reference[0][assets / "long" / "long.mp4"]
    assert (found - latents).abs().max() <= 1e-5 * latents.abs().max()


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing(cluster, assets, reference, tmp_path):
    from m3ddm_core.apps.scaleout import run_batch_ray
    spec = _spec(assets)
    videos = _videos(assets)
    killed = []

    def kill_once(pid: int, label: str) -> None:
        # the second dense pass of the long video: its worker dies while (or before) running it
        if not killed and label.endswith("pass 4"):
            killed.append((pid, label))
            threading.Timer(0.2, os.kill, (pid, signal.SIGKILL)).start()
    found: dict = {}
    written, _, failed = run_batch_ray(spec, videos, tmp_path / "out", workers=WORKERS, split_frames=60,
                                       show=False, latents=found, on_dispatch=kill_once)
    assert killed and failed == [] and sorted(written) == sorted(videos)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        output_path(v, tmp_path / "out", "9:16").name for v in videos)  # nothing half-written left
    for video in videos:
        assert torch.equal(found[video], reference[0][video]), video.name
        out = output_path(video, tmp_path / "out", "9:16")
        assert probe(out).frames == probe(video).frames


@pytest.mark.slow
def test_the_command_runs_on_a_local_cluster_and_names_what_failed(assets, tmp_path, capsys):
    if ray.is_initialized():
        ray.shutdown()
    (tmp_path / "in").mkdir()
    short = sorted((assets / "short").iterdir())[0]  # one video and a broken one (the folder test has several)
    (tmp_path / "in" / short.name).symlink_to(short)
    (tmp_path / "in" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    args = [str(tmp_path / "in"), "--ratio", "9:16", "--out", str(tmp_path / "out"), "--model",
            str(assets / "m3ddm-nano"), "--vae", str(assets / "vae"), "--steps", "1", "--scheduler", "ddim",
            "--working-size", "128", "--quiet", "--ray", "local", "--workers", "2"]
    assert main(args) == 1
    text = capsys.readouterr().out
    assert "done: 1 written, 0 skipped (already there), 1 failed" in text and "broken.mp4: " in text
    assert not ray.is_initialized()  # the command's own cluster is shut down
    bad = args[:6] + [str(tmp_path / "missing-model")] + args[7:]
    assert main(bad) == 2
    assert "cannot run on Ray: the workers could not load the models" in capsys.readouterr().err
