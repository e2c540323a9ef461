"""GPU check of current ComfyUI's model management (issue 30): the model with dynamic VRAM off and on.

Each mode runs in a process of its own, set up as ComfyUI's main.py sets up a server (dynamic VRAM is chosen once
per process: comfy-aimdo initialised, ``CoreModelPatcher`` rebound to the dynamic patcher). In it: a random
full-size M3DDM is loaded through the pack's loader (``runtime.load_model``: the patcher core builds its own models
with), loaded for sampling by ``comfy.model_management`` (``runtime.model_on_device``, as the nodes do), one
16-frame clip is sampled (2 steps, both guidance scales), then every model is unloaded and the handle dropped.
Printed per mode: the patcher, load and clip seconds, the device memory held after loading, after unloading and
after dropping the model, and whether the weights were freed; then the largest difference between the two modes'
clips (the same computation, weights resident or streamed).

Usage: ``python benchmarks/comfy_model_management.py [--comfy DIR] [--config full] [--out DIR]``;
``--device cpu --config tiny`` is the dry run (on the CPU core's dynamic patcher hands over to the plain one).
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _memory(torch, device) -> float:
    """MB the process holds on ``device`` (resident set on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device) / 2 ** 20
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _set_up_comfyui(comfy_dir: Path, dynamic: bool, cpu: bool) -> str:
    """What ComfyUI's main.py does before it loads a model; returns how dynamic VRAM ended up."""
    sys.path.insert(0, str(comfy_dir))
    import comfy.cli_args
    comfy.cli_args.args.cpu = cpu
    comfy.cli_args.args.enable_dynamic_vram = dynamic
    comfy.cli_args.args.disable_dynamic_vram = not dynamic
    import comfy.model_management as mm
    import comfy.model_patcher as mp
    if not dynamic:
        return "off"
    if cpu or not hasattr(mp, "ModelPatcherDynamic"):
        return "asked, not available here (CPU or ComfyUI without it): the plain patcher"
    import comfy.memory_management
    import comfy_aimdo.control
    try:
        comfy_aimdo.control.init()
        ready = comfy_aimdo.control.init_devices(d.index for d in mm.get_all_torch_devices())
    except Exception as exc:  # noqa: BLE001 -- reported, the check goes on with the plain patcher
        return f"comfy-aimdo failed ({exc}): the plain patcher"
    if not ready:
        return "comfy-aimdo found no device: the plain patcher"
    mp.CoreModelPatcher = mp.ModelPatcherDynamic
    comfy.memory_management.aimdo_enabled = True
    return "on"


def _load_plugin():
    spec = importlib.util.spec_from_file_location("comfyui_m3ddm", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["comfyui_m3ddm"] = module
    spec.loader.exec_module(module)
    importlib.import_module("comfyui_m3ddm.nodes")
    return sys.modules["comfyui_m3ddm.nodes.runtime"]


def run_mode(args) -> dict:
    dynamic = args.mode == "dynamic"
    state = _set_up_comfyui(Path(args.comfy), dynamic, args.device == "cpu")
    import torch
    from safetensors.torch import save_file

    import comfy.model_management as mm
    import folder_paths
    from clip_speed import CONFIGS, make_inputs, random_model
    from m3ddm_core import SampleSettings
    from m3ddm_core.pipeline.guidance import clip_conditioning
    from m3ddm_core.pipeline.sampler import sample_clip
    runtime = _load_plugin()
    models = Path(args.work) / "m3ddm"
    folder = models / f"random-{args.config}"
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(CONFIGS[args.config]))
        save_file(random_model(args.config, "cpu", torch.float16).state_dict(),
                  str(folder / "diffusion_pytorch_model.safetensors"))
    folder_paths.folder_names_and_paths["m3ddm"] = ([str(models)], {".safetensors", ".bin"})
    device = mm.get_torch_device()
    before = _memory(torch, device)
    t0 = time.perf_counter()
    handle = runtime.load_model(folder.name, "fp16" if device.type == "cuda" else "fp32")
    settings = SampleSettings(steps=2, s1=2.0, s2=4.0)
    model, settings = runtime.model_on_device(handle, settings, (32, 32), "comfy_model_management")
    load_s = time.perf_counter() - t0
    loaded = _memory(torch, device)
    inp = make_inputs(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        tokens = model.encode_global(inp["global"].to(handle.dtype))
        uncond = model.encode_global(torch.zeros_like(inp["global"]).to(handle.dtype))
        cond = clip_conditioning(inp["masked"], inp["uncond"], inp["mask"], inp["guides"], tokens, uncond)
        clip = sample_clip(model, inp["start"], cond, inp["noise"], 8, settings.steps, 2.0, 4.0, "pndm")
    clip_s = time.perf_counter() - t0
    torch.save(clip.float().cpu(), Path(args.work) / f"clip_{args.mode}.pt")
    del model, tokens, uncond, cond, clip
    mm.unload_all_models()
    mm.soft_empty_cache()
    unloaded = _memory(torch, device)
    patcher = type(handle.patcher).__name__
    weights = weakref.ref(handle.patcher.model)
    del handle
    gc.collect()
    mm.cleanup_models_gc()
    mm.soft_empty_cache()
    return {"mode": args.mode, "dynamic_vram": state, "patcher": patcher, "device": str(device),
            "load_s": round(load_s, 2), "clip_s": round(clip_s, 2), "mb_before": round(before),
            "mb_loaded": round(loaded), "mb_unloaded": round(unloaded), "mb_dropped": round(_memory(torch, device)),
            "weights_freed": weights() is None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy", default=os.environ.get("M3DDM_COMFYUI_DIR", str(REPO / ".comfyui" / "0.33.0")))
    ap.add_argument("--config", default="full", choices=["tiny", "medium", "full"])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--out", default=None, help="also write the figures here (comfy_model_management.json)")
    ap.add_argument("--mode", choices=["plain", "dynamic"], help=argparse.SUPPRESS)  # one mode, in a child
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(run_mode(args)), flush=True)
        return 0
    results = {}
    with tempfile.TemporaryDirectory(prefix="m3ddm-mm-") as work:
        for mode in ("plain", "dynamic"):
            cmd = [sys.executable, __file__, "--mode", mode, "--work", work, "--comfy", args.comfy, "--config",
                   args.config, "--device", args.device]
            run = subprocess.run(cmd, capture_output=True, text=True)
            lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
            if run.returncode != 0 or not lines:
                print(f"{mode}: FAILED (exit {run.returncode})\n{run.stderr[-3000:]}")
                results[mode] = {"failed": run.stderr[-500:]}
                continue
            results[mode] = json.loads(lines[-1][7:])
            print(f"{mode}: " + ", ".join(f"{k} {v}" for k, v in results[mode].items() if k != "mode"), flush=True)
        clips = [Path(work) / f"clip_{mode}.pt" for mode in ("plain", "dynamic")]
        if all(p.exists() for p in clips):
            import torch
            a, b = (torch.load(p) for p in clips)
            results["max_abs_diff"] = float((a - b).abs().max())
            print(f"the two modes' clips differ by at most {results['max_abs_diff']:.3g}")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "comfy_model_management.json").write_text(json.dumps(results, indent=1))
    ok = all("failed" not in results.get(m, {"failed": 1}) and results[m]["weights_freed"] for m in ("plain", "dynamic"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
