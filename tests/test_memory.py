"""m3ddm_core.pipeline.memory: the live-bytes tracker, the traced sampling memory, and how it compares to a measurement."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from m3ddm_core import FULL_SIZE_CONFIG, build_unet
from m3ddm_core.pipeline.memory import LiveTensorBytes, fits_batched, sampling_memory, traced_peak_bytes

sys.path.insert(0, str(REPO / "benchmarks"))
from clip_speed import CONFIGS  # noqa: E402

TINY = CONFIGS["tiny"]  # the config the measuring benchmark builds
GIB = 2 ** 30


def test_tracker_counts_live_storages_once():
    def program():
        x = torch.zeros(1000)            # 4000 B live
        y = x * 2                        # 8000
        z = y.view(10, 100)              # a view: still 8000
        del y                            # z keeps the storage: 8000
        z.add_(1)                        # in place: 8000
        w = z + 1                        # 12000 (the peak)
        del x, z, w
        return torch.zeros(10)           # 40 after everything else is gone

    tracker = LiveTensorBytes()
    with tracker:
        out = program()
    assert tracker.peak == 12000
    assert tracker.current == 40
    del out
    assert tracker.current == 0


def test_views_of_outside_tensors_are_not_counted():
    weight = torch.zeros(256, 256)
    assert traced_peak_bytes(lambda: weight.t()[:10].unsqueeze(0)[..., :5]) == 0
    assert traced_peak_bytes(lambda: weight[:10].reshape(-1)[:5]) == 0
    assert traced_peak_bytes(lambda: weight.t()[:10].reshape(-1)) == 10 * 256 * 4  # not viewable: a copy
    assert traced_peak_bytes(lambda: weight.t().contiguous()) == 256 * 256 * 4


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_copies_by_maybe_view_ops_are_counted_in_every_grad_mode(mode):
    # ComfyUI executes nodes under inference mode, where reshape/contiguous/to reach the tracker undecomposed.
    weight = torch.zeros(100, 100)

    def program():
        a = weight.t().reshape(-1)       # a copy: 40000 B
        b = weight.t().contiguous()      # 40000 B
        c = weight.to(torch.float64)     # 80000 B
        return a, b, c

    tracker = LiveTensorBytes()
    with mode(), tracker:
        out = program()
    assert tracker.peak == 160000
    del out


def test_estimates_order_as_expected():
    batched = sampling_memory(TINY, torch.float32, 3)
    sequential = sampling_memory(TINY, torch.float32, 3, sequential=True)
    one, two = sampling_memory(TINY, torch.float32, 1), sampling_memory(TINY, torch.float32, 2)
    assert one.activations < two.activations < batched.activations
    assert sequential.activations < batched.activations
    state = build_unet(TINY, device="meta").state_dict()
    assert batched.weights == sequential.weights == sum(t.numel() * t.element_size() for t in state.values())
    half = sampling_memory(TINY, torch.bfloat16, 3)
    assert abs(half.activations * 2 / batched.activations - 1) < 0.05
    assert sampling_memory(TINY, torch.float32, 3) is batched  # cached
    with pytest.raises(ValueError, match="branches must be 1, 2 or 3"):
        sampling_memory(TINY, torch.float32, 4)
    two_passes = sampling_memory(TINY, torch.float32, 3, passes=2)
    assert two_passes.weights == batched.weights and 1.7 < two_passes.activations / batched.activations < 2.1
    with pytest.raises(ValueError, match="passes must be >= 1"):
        sampling_memory(TINY, torch.float32, 3, passes=0)


def test_full_size_fp16_clip_fits_the_8_gb_budget():
    """The performance issue's VRAM budget (full size, fp16, 256x256 canvas), as traced."""
    batched = sampling_memory(FULL_SIZE_CONFIG, torch.float16, 3)
    sequential = sampling_memory(FULL_SIZE_CONFIG, torch.float16, 3, sequential=True)
    assert 2.3 * GIB < batched.weights < 2.5 * GIB  # 1.3B parameters in fp16
    assert batched.weights + batched.activations * 1.3 <= 8 * GIB
    assert sequential.activations < 0.7 * batched.activations


def test_fits_batched_uses_the_margin():
    mem = sampling_memory(TINY, torch.float32, 3)
    assert fits_batched(int(mem.activations * 1.31), mem)
    assert not fits_batched(int(mem.activations * 1.29), mem)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measures the process peak through /proc (Linux)")
@pytest.mark.parametrize("mode, passes", [("batched", 1), ("sequential", 1), ("batched", 2)])
def test_estimate_matches_a_measured_cpu_step(mode, passes):
    """Run a real guided step (real kernels, SDPA, the CPU conv route) -- one pass, or several sampled together --
    in a fresh process whose allocator maps every large block separately, so the resident-set peak follows live
    tensor bytes; compare with the trace. On a 128 canvas: the activations scale with the latent area, which the
    trace takes as a parameter (measured/traced 1.00, 1.05, 1.00 on this machine)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "memory_budget.py"), "--config", "tiny",
                          "--dtype", "fp32", "--device", "cpu", "--working-size", "128", "--passes", str(passes),
                          "--measure-only", mode],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    measured = int(out.stdout.split()[-1])
    estimate = sampling_memory(TINY, torch.float32, 3, mode == "sequential", latent_hw=(16, 16),
                               passes=passes).activations
    assert 0.85 <= measured / estimate <= 1.15, (measured, estimate)
