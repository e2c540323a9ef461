"""Every GPU figure of the performance issue from one process (one short device lease): one model, many sections.

Sections, most important first; each prints its lines as it goes, a failing section is reported and skipped, and
a section that would start after ``--budget`` seconds is left out (named in the summary):
1. clip: full-size time per 16-frame clip at 50 steps (fp16), achieved TFLOP/s, peak memory;
1b. batched: a 450-frame plan with k = 1, 2, 4 passes per UNet call (``batched_passes.py``; ``--batched-steps``
   steps per pass), time per pass as a ratio to k = 1, peak VRAM beside the trace;
2. reference: the official computation order vs the optimized path (same weights, seed, inputs; ratio, max diff);
3. memory: one guided step's measured peak above the weights vs the trace the nodes use, batched and low-VRAM;
4. low_vram: the sequential (one UNet call per branch) clip time against the batched one;
5. candidates: one guided step under each option, as a ratio to the current path -- SDPA backends (and which
   kernels the default picks), conv3d vs per-frame pseudo-3D convolutions, channels-last weights, bf16, a CUDA
   graph of the step, VAE decode batch size;
6. stream (batched passes as the free memory allows, as the node does): a 450-frame 1080p file through the streamed path of M3DDM Outpaint Video (encode while reading,
   Coarse-to-Fine on latents, composite written at 1920x3414) -- time per phase, peak VRAM, peak RAM;
7. video: a 450-frame video through Coarse-to-Fine (``outpaint_video``, batched passes as the free memory allows)
   with a random full-size SD VAE;
8. bf16: the full 50-step clip in bf16;
9. compile: ``torch.compile`` of the UNet (compile time, recompiles over timesteps, step ratio).
The last lines are a summary table; ``--out`` also receives it as ``gpu_figures.json``.
Usage: ``python benchmarks/gpu_suite.py [--config full] [--out DIR] [--budget 420]``; ``--config tiny
--device cpu --steps 2 --video-frames 40 --video-steps 1 --batched-steps 1`` is the dry run of the same code on a CPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from candidates import step_inputs  # noqa: E402
from clip_speed import (CONFIGS, branch_forward_flops, make_inputs, optimized_clip, random_model,  # noqa: E402
                        reference_clip)
from batched_passes import measure as measure_batched, random_video  # noqa: E402
from m3ddm_core import (SampleSettings, choose_branching, default_max_passes, outpaint_video,  # noqa: E402
                        plan_canvas)
from m3ddm_core.pipeline.executors import device_free_memory  # noqa: E402
from m3ddm_core.model import unet3d  # noqa: E402
from m3ddm_core.pipeline.guidance import GuidedDenoiser, clip_conditioning  # noqa: E402
from m3ddm_core.pipeline.memory import guided_step as traced_guided_step, sampling_memory  # noqa: E402
from m3ddm_core.pipeline.sampler import sample_clip  # noqa: E402
from m3ddm_core.pipeline.schedule import plan_schedule  # noqa: E402
from m3ddm_core.pipeline.encode import CANVAS_WORKERS  # noqa: E402

FIGURES: dict[str, object] = {}
REPEATS = {"n": 5}  # timed calls per median (``--repeats``: 1 for a CPU dry run)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` synchronized calls (at most ``--repeats``), after ``warmup``."""
    repeats = min(repeats, REPEATS["n"])
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_fn(model, cond, x, sequential=False, t=500, fps=8):
    with torch.no_grad():
        denoiser = GuidedDenoiser(model, cond, 2.0, 4.0, sequential)

    def run():
        with torch.no_grad():
            return denoiser(x, t, fps)
    return run


def line(name: str, seconds: float, base: float, diff: float | None = None, note: str = "") -> None:
    d = "" if diff is None else f"  max|diff| {diff:.2e}"
    print(f"  {name:<46} {seconds * 1e3:9.1f} ms  {base / seconds:5.2f}x{d}{'  ' + note if note else ''}", flush=True)
    FIGURES.setdefault("candidates", {})[name] = {"ms": round(seconds * 1e3, 2), "ratio": round(base / seconds, 3),
                                                  **({} if diff is None else {"max_diff": diff})}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# ---------------------------------------------------------------------------------------------------- sections
def section_clip(ctx):
    model, device, steps = ctx["model"], ctx["device"], ctx["steps"]
    inp = make_inputs(device)
    optimized_clip(model, inp, 1)  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    optimized_clip(model, inp, steps)
    sync(device)
    t = time.perf_counter() - t0
    flops = branch_forward_flops(CONFIGS[ctx["config"]])
    tflops = 3 * steps * flops / t / 1e12
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
    print(f"  {ctx['dtype_name']} {steps} steps: {t:.2f} s/clip ({t / steps * 1e3:.1f} ms/step), {tflops:.1f} TFLOP/s "
          f"achieved ({3 * steps * flops / 1e12:.0f} TFLOP counted), peak {peak:.2f} GiB allocated")
    FIGURES["clip"] = {"dtype": ctx["dtype_name"], "steps": steps, "seconds": round(t, 3), "tflops": round(tflops, 1),
                       "peak_gib": round(peak, 2)}
    ctx["clip_seconds"] = t


def section_reference(ctx):
    model, device = ctx["model"], ctx["device"]
    steps = min(ctx["steps"], 5)
    inp = make_inputs(device)
    sync(device)
    t0 = time.perf_counter()
    opt_out = optimized_clip(model, inp, steps)
    sync(device)
    t_opt = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_out = reference_clip(model, inp, steps)
    sync(device)
    t_ref = time.perf_counter() - t0
    model.set_attention(unet3d.sdpa_attention)
    diff = max_diff(opt_out, ref_out)
    tol = 1e-3 * max(1.0, ref_out.float().abs().max().item())
    print(f"  {steps} steps: reference {t_ref:.2f} s, optimized {t_opt:.2f} s, ratio {t_ref / t_opt:.2f}x; "
          f"max|diff| {diff:.2e} (sampler-loop tolerance {tol:.1e}, {ctx['dtype_name']}: "
          f"{'inside' if diff <= tol else 'outside -- half precision'})")
    FIGURES["reference"] = {"steps": steps, "reference_s": round(t_ref, 3), "optimized_s": round(t_opt, 3),
                            "ratio": round(t_ref / t_opt, 2), "max_diff": diff}


def section_memory(ctx):
    model, device = ctx["model"], ctx["device"]
    cfg, dtype = CONFIGS[ctx["config"]], model.dtype
    out = {}
    for sequential in (False, True):
        traced = sampling_memory(cfg, dtype, 3, sequential)
        z = lambda *s: torch.randn(*s, device=device, dtype=dtype)  # noqa: E731
        with torch.no_grad():
            traced_guided_step(model, z, 3, sequential)
            if device.type != "cuda":
                print("  measured peaks need CUDA (the CPU measurement is benchmarks/memory_budget.py --measure)")
                return
            sync(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            traced_guided_step(model, z, 3, sequential)
            sync(device)
            measured = torch.cuda.max_memory_allocated(device) - base
        mode = "sequential" if sequential else "batched"
        print(f"  {mode}: measured {measured / 2 ** 30:.2f} GiB above the weights, traced {traced.activations / 2 ** 30:.2f}"
              f" GiB (ratio {measured / traced.activations:.2f}); weights {traced.weights / 2 ** 30:.2f} GiB; "
              f"peak total {(measured + traced.weights) / 2 ** 30:.2f} GiB")
        out[mode] = {"measured_gib": round(measured / 2 ** 30, 3), "traced_gib": round(traced.activations / 2 ** 30, 3),
                     "weights_gib": round(traced.weights / 2 ** 30, 3)}
    FIGURES["memory"] = out


def section_low_vram(ctx):
    model, device = ctx["model"], ctx["device"]
    steps = min(ctx["steps"], 10)
    inp = make_inputs(device)
    with torch.no_grad():
        tokens = model.encode_global(inp["global"].to(model.dtype))
        uncond = model.encode_global(torch.zeros_like(inp["global"]).to(model.dtype))
    cond = clip_conditioning(inp["masked"], inp["uncond"], inp["mask"], inp["guides"], tokens, uncond)
    res = {}
    for sequential in (False, True):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        t0 = time.perf_counter()
        sample_clip(model, inp["start"], cond, inp["noise"], 8, steps, sequential=sequential)
        sync(device)
        res[sequential] = (time.perf_counter() - t0,
                           torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan"))
    (tb, mb), (ts, ms) = res[False], res[True]
    print(f"  {steps} steps: batched {tb:.2f} s (peak {mb:.2f} GiB), low-VRAM {ts:.2f} s (peak {ms:.2f} GiB): "
          f"low-VRAM costs {ts / tb:.2f}x the time")
    FIGURES["low_vram"] = {"steps": steps, "batched_s": round(tb, 3), "sequential_s": round(ts, 3),
                           "batched_peak_gib": round(mb, 2), "sequential_peak_gib": round(ms, 2)}


def _attention_kernels(fn, device) -> dict[str, int]:
    """Names of the attention kernels one call launches (profiler), with counts."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]) as prof:
        fn()
        sync(device)
    names: dict[str, int] = {}
    for e in prof.key_averages():
        k = e.key.lower()
        if any(s in k for s in ("flash", "fmha", "attention", "cudnn_sdpa", "efficient")):
            names[e.key[:90]] = e.count
    return names


def section_candidates(ctx):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model, device = ctx["model"], ctx["device"]
    cond, x = step_inputs(model, device, model.dtype)
    current = step_fn(model, cond, x)
    base_out = current()
    base = median_seconds(current, device)
    print(f"  one guided step (3 branches, 16 frames, 32x32 latents, {ctx['dtype_name']}), ratio to the current path")
    line("current path", base, base)
    for backend in ("MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):
        try:
            with sdpa_kernel([getattr(SDPBackend, backend)]):
                out = current()
                t = median_seconds(current, device, repeats=3)
            line(f"SDPA forced to {backend}", t, base, max_diff(out, base_out))
        except Exception as exc:  # noqa: BLE001 -- a backend that cannot run these shapes is a finding
            print(f"  SDPA forced to {backend}: unavailable ({str(exc).splitlines()[0][:120]})")
    saved_dev, saved_dt = set(unet3d.CONV3D_DEVICES), set(unet3d.CONV3D_DTYPES)
    try:
        unet3d.CONV3D_DEVICES.add(device.type)
        unet3d.CONV3D_DTYPES.add(model.dtype)
        out = current()
        line("pseudo-3D as conv3d", median_seconds(current, device), base, max_diff(out, base_out))
        unet3d.CONV3D_DEVICES.discard(device.type)
        out = current()
        line("pseudo-3D as per-frame conv2d + conv1d", median_seconds(current, device), base, max_diff(out, base_out))
    finally:
        unet3d.CONV3D_DEVICES.clear(), unet3d.CONV3D_DEVICES.update(saved_dev)
        unet3d.CONV3D_DTYPES.clear(), unet3d.CONV3D_DTYPES.update(saved_dt)
    seq = step_fn(model, cond, x, sequential=True)
    line("branches sequential (low-VRAM)", median_seconds(seq, device, repeats=3), base, max_diff(seq(), base_out))
    if device.type == "cuda":
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        for m in convs:
            m.weight.data = m.weight.data.to(memory_format=torch.channels_last)
        try:
            out = current()
            line("channels-last conv2d weights", median_seconds(current, device, repeats=3), base,
                 max_diff(out, base_out))
        finally:
            for m in convs:
                m.weight.data = m.weight.data.contiguous()
        _graph_candidate(model, cond, x, device, base, base_out)
    other = torch.bfloat16 if model.dtype != torch.bfloat16 else torch.float16
    model.to(other)
    try:
        cond2, x2 = step_inputs(model, device, model.dtype)
        f2 = step_fn(model, cond2, x2)
        line(f"weights and activations in {str(other)[6:]}", median_seconds(f2, device, repeats=3), base,
             max_diff(f2(), base_out))
    finally:
        model.to(ctx["dtype"])
    if ctx["vae"] is not None:
        _vae_candidate(ctx)
    # Last: the CUDA profiler leaves its callbacks behind and slows every later launch (seen: +13% per step).
    print(f"  attention kernels the current path launches: {_attention_kernels(current, device)}")


def _graph_candidate(model, cond, x, device, base, base_out):
    """The whole guided step captured once as a CUDA graph and replayed (timestep and fps as device tensors)."""
    denoiser = GuidedDenoiser(model, cond, 2.0, 4.0)
    t = torch.tensor(500, device=device)
    fps = torch.tensor(8, device=device)
    static_x = x.clone()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(2):
            denoiser(static_x, t, fps)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = denoiser(static_x, t, fps)
    graph.replay()
    sync(device)
    line("CUDA graph of the guided step (replay)", median_seconds(graph.replay, device), base,
         max_diff(static_out, base_out))
    del graph


def _vae_candidate(ctx):
    vae, device = ctx["vae"], ctx["device"]
    latents = torch.randn(16, 4, 32, 32, device=device, dtype=vae.dtype)
    base = None
    for batch in (1, 4, 16):
        def run():
            with torch.no_grad():
                return torch.cat([vae.decode(latents[i:i + batch]).sample for i in range(0, 16, batch)])
        t = median_seconds(run, device, repeats=3)
        base = base or t
        line(f"VAE decode 16 frames at 256x256, batch {batch}", t, base)


def random_sd_vae(device, dtype):
    """A random full-size SD VAE (diffusers AutoencoderKL, SD1.5's layout): the real cost of encode/decode."""
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                         down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                         norm_num_groups=32).to(device, dtype).eval().requires_grad_(False)


def timed_vae(vae, device, counts: dict):
    """The VAE as the pipeline's ``encode`` / ``decode`` functions, their time and images counted in ``counts``."""
    def encode(pixels):
        t0 = time.perf_counter()
        counts["encoded"] += pixels.shape[0]
        with torch.no_grad():
            x = pixels.to(device, vae.dtype).permute(0, 3, 1, 2) * 2 - 1
            out = vae.encode(x).latent_dist.mean.float() * 0.18215
        sync(device)
        counts["encode_s"] += time.perf_counter() - t0
        return out

    def decode(latents):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = ((vae.decode(latents.to(device, vae.dtype) / 0.18215).sample.float() + 1) / 2).clamp(0, 1) \
                .permute(0, 2, 3, 1)
        sync(device)
        counts["decode_s"] += time.perf_counter() - t0
        return out
    return encode, decode


def default_settings(ctx, steps: int, latent_hw) -> SampleSettings:
    """What the nodes and the batch command run with: passes per call and branching decided by free memory."""
    model, device = ctx["model"], ctx["device"]
    settings = choose_branching(model, SampleSettings(steps=steps), latent_hw, device_free_memory(device),
                                max_passes=default_max_passes(device))
    print(f"  {settings.passes_per_call} pass(es) per UNet call, branches "
          f"{'one after another' if settings.sequential else 'batched'}")
    return settings


def section_batched(ctx):
    """k ready passes per UNet call on a 450-frame plan, as a ratio to one pass per call in the same run."""
    model = ctx["model"]
    frames, steps = ctx["video_frames"], ctx["batched_steps"]
    rows = measure_batched(model, random_video(frames, 256), frames, SampleSettings(steps=steps), [1, 2, 4])
    base = rows[0]["per_pass"]
    for r in rows:
        print(f"  k={r['k']}: {r['calls']} UNet calls, {r['per_pass']:.3f} s/pass at {steps} steps "
              f"({r['per_pass'] * 50 / steps:.2f} s/pass at 50), x{base / r['per_pass']:.2f} vs k=1, peak "
              f"{r['peak'] / 2 ** 30:.2f} GiB above the weights (traced {r['traced'] / 2 ** 30:.2f}), "
              f"max rel diff {r['diff']:.1e}")
    FIGURES["batched"] = [{"k": r["k"], "seconds_per_pass_50_steps": round(r["per_pass"] * 50 / steps, 3),
                           "speedup": round(base / r["per_pass"], 3), "peak_gib": round(r["peak"] / 2 ** 30, 2),
                           "traced_gib": round(r["traced"] / 2 ** 30, 2)} for r in rows]


def section_video(ctx):
    model, device, vae = ctx["model"], ctx["device"], ctx["vae"]
    n, steps = ctx["video_frames"], ctx["video_steps"]
    counts = {"encoded": 0, "encode_s": 0.0, "decode_s": 0.0}
    encode, decode = timed_vae(vae, device, counts)

    frames = torch.rand(n, 120, 208, 3, generator=torch.Generator().manual_seed(n))
    plan = plan_canvas((120, 208), ratio="9:16")
    passes = len(plan_schedule(n, "auto"))
    sync(device)
    t0 = time.perf_counter()
    settings = default_settings(ctx, steps, plan.latent_hw)
    result = outpaint_video(model, frames, plan, encode, decode, fps=24, settings=settings)
    sync(device)
    t = time.perf_counter() - t0
    assert result.canvases.shape[0] == n, "the video lost frames"
    print(f"  {n} frames -> {tuple(result.canvases.shape)}: {passes} passes x {steps} steps in {t:.1f} s "
          f"({t / passes:.2f} s/pass, {counts['encoded']} VAE encodes, random full-size SD VAE in {str(vae.dtype)[6:]})")
    unet = passes * ctx["clip_seconds"] * steps / ctx["steps"] if "clip_seconds" in ctx else float("nan")
    print(f"  of which VAE encode {counts['encode_s']:.1f} s, decode {counts['decode_s']:.1f} s, sampling ~{unet:.1f} s "
          f"(passes x the clip section's time), the rest ~{t - unet - counts['encode_s'] - counts['decode_s']:.1f} s "
          f"(canvas building on {CANVAS_WORKERS} threads, data moves)")
    FIGURES["video"] = {"frames": n, "passes": passes, "steps": steps, "seconds": round(t, 2),
                        "seconds_per_pass": round(t / passes, 3), "vae_encode_s": round(counts["encode_s"], 1),
                        "vae_decode_s": round(counts["decode_s"], 1), "canvas_workers": CANVAS_WORKERS}


def _rss_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def section_stream(ctx):
    """The streamed path of M3DDM Outpaint Video on a 1080p file: frames decoded into the working canvas and
    encoded, Coarse-to-Fine on latents, the composite written at 1920x3414 as H.264 -- time per phase, peak VRAM,
    peak RAM above the process before it."""
    import tempfile
    from fractions import Fraction

    import numpy as np

    from m3ddm_core import VideoWriter, encode_video, probe, read_frames, write_outpainted
    model, device, vae = ctx["model"], ctx["device"], ctx["vae"]
    n, steps = ctx["video_frames"], ctx["video_steps"]
    h, w = ctx["stream_hw"]
    counts = {"encoded": 0, "encode_s": 0.0, "decode_s": 0.0}
    encode, decode = timed_vae(vae, device, counts)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.mp4"
        t0 = time.perf_counter()
        yy, xx = np.mgrid[0:h, 0:w]
        with VideoWriter(source, Fraction(30), w, h, preset="ultrafast") as writer:
            for i in range(n):
                writer.write(np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, np.full_like(xx, 3 * i % 256)],
                                      -1).astype(np.uint8))
        made = time.perf_counter() - t0
        plan = plan_canvas((h, w), ratio="9:16")
        passes = len(plan_schedule(n, "auto"))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _rss_kb("VmRSS:")
        t0 = time.perf_counter()
        encoded = encode_video(read_frames(source, 0, n), n, plan, encode)
        t_encode = time.perf_counter() - t0
        result = outpaint_video(model, range(n), plan, None, None, fps=30, encoded=encoded,
                                settings=default_settings(ctx, steps, plan.latent_hw))
        sync(device)
        t_sample = time.perf_counter() - t0 - t_encode
        write_outpainted(Path(tmp) / "out.mp4", source, probe(source), 0, n, plan, result.latents, decode)
        t = time.perf_counter() - t0
        t_write = t - t_encode - t_sample
        vram = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
        ram = (_rss_kb("VmHWM:") - base) / 1024
        out_hw = tuple(plan.output_hw)
    print(f"  {n} frames {w}x{h} -> {out_hw[1]}x{out_hw[0]} (source made in {made:.0f} s): {t:.1f} s = encode "
          f"{t_encode:.1f} s + {passes} passes x {steps} steps {t_sample:.1f} s + write {t_write:.1f} s "
          f"(VAE decode {counts['decode_s']:.1f} s); peak VRAM {vram:.2f} GiB, peak RAM +{ram:.0f} MB")
    FIGURES["stream"] = {"frames": n, "source": f"{w}x{h}", "output": f"{out_hw[1]}x{out_hw[0]}", "passes": passes,
                         "steps": steps, "seconds": round(t, 1), "encode_s": round(t_encode, 1),
                         "sample_s": round(t_sample, 1), "write_s": round(t_write, 1),
                         "peak_vram_gib": round(vram, 2), "peak_ram_mb": round(ram)}


def section_bf16(ctx):
    model, device = ctx["model"], ctx["device"]
    model.to(torch.bfloat16)
    try:
        inp = make_inputs(device)
        optimized_clip(model, inp, 1)
        sync(device)
        t0 = time.perf_counter()
        optimized_clip(model, inp, ctx["steps"])
        sync(device)
        t = time.perf_counter() - t0
    finally:
        model.to(ctx["dtype"])
    print(f"  bf16 {ctx['steps']} steps: {t:.2f} s/clip ({ctx['clip_seconds'] / t:.2f}x the {ctx['dtype_name']} clip)"
          if "clip_seconds" in ctx else f"  bf16 {ctx['steps']} steps: {t:.2f} s/clip")
    FIGURES["bf16_clip_seconds"] = round(t, 3)


def section_compile(ctx):
    model, device = ctx["model"], ctx["device"]
    cond, x = step_inputs(model, device, model.dtype)
    ts = [torch.tensor(v, device=device) for v in (981, 500, 21)]
    fps = torch.tensor(8, device=device)
    eager = step_fn(model, cond, x, t=ts[1], fps=fps)
    base_out, base = eager(), median_seconds(eager, device)
    model.forward = torch.compile(model.forward)  # the instance attribute wins over the class method
    try:
        t0 = time.perf_counter()
        step_fn(model, cond, x, t=ts[0], fps=fps)()
        sync(device)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for t in ts[1:]:
            step_fn(model, cond, x, t=t, fps=fps)()
        sync(device)
        again = time.perf_counter() - t0
        compiled = step_fn(model, cond, x, t=ts[1], fps=fps)
        print(f"  torch.compile: first call {first:.1f} s (compiling), two more timesteps {again:.2f} s "
              f"(no recompile if about two steps)")
        line("torch.compile of the UNet (timestep as a tensor)", median_seconds(compiled, device), base,
             max_diff(compiled(), base_out))
        FIGURES["compile_first_call_s"] = round(first, 1)
    finally:
        del model.forward


SECTIONS = [("clip", section_clip), ("batched", section_batched), ("reference", section_reference),
            ("memory", section_memory),
            ("low_vram", section_low_vram), ("candidates", section_candidates), ("stream", section_stream),
            ("video", section_video), ("bf16", section_bf16), ("compile", section_compile)]
# Rough seconds each needs on an H200 at full size: a section is left out when it would end past the budget.
NEEDS = {"clip": 15, "batched": 90, "reference": 15, "memory": 20, "low_vram": 10, "candidates": 40, "stream": 200, "video": 150,
         "bf16": 10, "compile": 150}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="full")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default=None)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--video-frames", type=int, default=450)
    ap.add_argument("--video-steps", type=int, default=50)
    ap.add_argument("--batched-steps", type=int, default=10, help="steps per pass in the batched section")
    ap.add_argument("--stream-size", default="1920x1080", help="WxH of the streamed section's source file")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds; later sections are left out past it")
    ap.add_argument("--only", nargs="*", help="run only these sections")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per median")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    started = time.perf_counter()
    REPEATS["n"] = args.repeats
    device = torch.device(args.device)
    dtype_name = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        FIGURES["gpu"] = f"{props.name}, {props.total_memory / 2 ** 30:.0f} GiB, {props.multi_processor_count} SMs"
    FIGURES.update(torch=torch.__version__, config=args.config, date=time.strftime("%Y-%m-%d"))
    print(f"gpu_suite: {FIGURES.get('gpu', device)} torch {torch.__version__} config={args.config} {dtype_name}",
          flush=True)
    model = random_model(args.config, device, dtype)
    vae = None
    try:
        vae = random_sd_vae(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    except Exception as exc:  # noqa: BLE001
        print(f"no random SD VAE ({exc}); the video section and the VAE candidate are left out")
    ctx = dict(model=model, device=device, dtype=dtype, dtype_name=dtype_name, config=args.config, steps=args.steps,
               video_frames=args.video_frames, video_steps=args.video_steps, batched_steps=args.batched_steps, vae=vae,
               stream_hw=tuple(int(v) for v in args.stream_size.split("x"))[::-1])
    status = {}
    for name, fn in SECTIONS:
        if args.only and name not in args.only:
            continue
        if name in ("video", "stream") and vae is None:
            status[name] = "left out: no VAE"
            continue
        elapsed = time.perf_counter() - started
        if device.type == "cuda" and elapsed + NEEDS[name] > args.budget:
            status[name] = f"left out: {elapsed:.0f} s spent of the {args.budget:.0f} s budget"
            print(f"== {name}: {status[name]}", flush=True)
            continue
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            fn(ctx)
            status[name] = f"ok in {time.perf_counter() - t0:.1f} s"
        except Exception:  # noqa: BLE001 -- report and go on: the lease is short
            traceback.print_exc()
            status[name] = "FAILED (traceback above)"
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu_figures.json").write_text(json.dumps({"figures": FIGURES, "sections": status}, indent=1))
    print("== summary")
    for name, s in status.items():
        print(f"  {name:<11} {s}")
    print(json.dumps(FIGURES, default=str))


if __name__ == "__main__":
    main()
