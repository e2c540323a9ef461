"""What only a CUDA GPU can show: parity of the recorded tiny UNet on CUDA, the fused attention kernels in use at
full size (not the math fallback), and the traced memory the nodes batch by bounding the measured CUDA peak.

Skipped with a reason where no CUDA device is present (CI has none); ``benchmarks/gpu_checks.sh`` runs this
module on a lent GPU.
"""
import pytest
import torch

from m3ddm_core import FULL_SIZE_CONFIG, build_unet
from m3ddm_core.pipeline.memory import MEMORY_MARGIN, guided_step, sampling_memory
from reference import official_unet_forward

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (benchmarks/gpu_checks.sh runs it on a lent one)")

# Relative L2 error of the whole output against the recorded fp32 official output (METHOD: bf16 operands land
# between 1e-3 and 1e-2; fp16 keeps three more mantissa bits).
REL_L2 = {torch.float16: 5e-3, torch.bfloat16: 3e-2}


@pytest.fixture
def no_tf32():
    """fp32 parity means fp32 arithmetic: cuDNN convolutions default to TF32 on Ampere and newer."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("branches", [1, 2, 4])
def test_tiny_unet_matches_the_recorded_official_output_on_cuda_fp32(tiny_unet, tiny_cases, no_tf32, branches):
    tensors, meta = tiny_cases
    case = next(c for c in meta["cases"] if c["branches"] == branches)
    model = build_unet(tiny_unet.raw_config, device="cuda")
    model.load_state_dict(tiny_unet.state_dict())
    out = official_unet_forward(model, tensors[case["input"]].cuda(), case["timestep"], case["fps"],
                                tensors["global_latents"].cuda(), branches)
    assert out.is_cuda
    assert (out.cpu() - tensors[case["output"]]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_tiny_unet_in_half_precision_on_cuda_stays_close(tiny_unet, tiny_cases, dtype):
    tensors, meta = tiny_cases
    case = next(c for c in meta["cases"] if c["branches"] == 4)
    model = build_unet(tiny_unet.raw_config, device="cuda", dtype=dtype)
    model.load_state_dict(tiny_unet.state_dict())
    out = official_unet_forward(model, tensors[case["input"]].cuda().to(dtype), case["timestep"], case["fps"],
                                tensors["global_latents"].cuda().to(dtype), 4)
    ref = tensors[case["output"]]
    assert out.dtype == dtype and torch.isfinite(out).all()
    rel = ((out.float().cpu() - ref).norm() / ref.norm()).item()
    assert rel <= REL_L2[dtype], rel


@pytest.fixture(scope="module")
def full_size_fp16():
    torch.manual_seed(0)
    model = build_unet(FULL_SIZE_CONFIG, device="cuda", dtype=torch.float16).requires_grad_(False)
    with torch.no_grad():  # keep a random deep model's activations in range
        for p in model.parameters():
            if p.ndim > 1:
                p.mul_(0.5)
    yield model
    del model
    torch.cuda.empty_cache()


def test_full_size_attention_runs_on_fused_sdpa_kernels(full_size_fp16):
    """Every attention of a full-size guided step (spatial 1024 tokens, temporal 16 frames, cross-attention to the
    global tokens; head widths 40/80/160) runs with the math fallback switched off, and gives the same output."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def step():
        torch.manual_seed(1)
        z = lambda *s: torch.randn(*s, device="cuda", dtype=torch.float16)  # noqa: E731
        with torch.no_grad():
            return guided_step(full_size_fp16, z)

    default = step()
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        fused = step()
    assert torch.isfinite(default).all()
    assert torch.equal(fused, default), "the default path does not pick the fused kernels"


@pytest.mark.parametrize("sequential", [False, True], ids=["batched", "low_vram"])
def test_traced_step_memory_bounds_the_measured_cuda_peak(full_size_fp16, sequential):
    """The nodes batch the guidance branches when the trace (times MEMORY_MARGIN) fits in free memory: the
    measured peak of a real step must stay under it, or a card the trace says fits runs out of memory."""
    traced = sampling_memory(FULL_SIZE_CONFIG, torch.float16, 3, sequential).activations
    z = lambda *s: torch.randn(*s, device="cuda", dtype=torch.float16)  # noqa: E731
    with torch.no_grad():
        guided_step(full_size_fp16, z, 3, sequential)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        guided_step(full_size_fp16, z, 3, sequential)
        torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated() - base
    assert 0 < measured <= traced * MEMORY_MARGIN, (measured / 2 ** 30, traced / 2 ** 30)
