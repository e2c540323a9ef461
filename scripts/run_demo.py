"""The main job: outpaint the shipped clip with workflow (b) through a real, headless ComfyUI server.

Uses the real weights when they are installed (models/m3ddm/M3DDM-Video-Outpainting and the SD1.5 VAE
models/vae/vae-ft-mse-840000-ema-pruned.safetensors, in ComfyUI's models folder); otherwise a small
random-weight M3DDM of the same architecture and a random TAESD VAE, and it says so loudly (the new border is
then noise). Writes the mp4 into ./output/ and prints its path.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from comfy_harness import ComfyServer, workflow_to_api  # noqa: E402

WORKFLOW = REPO / "workflows" / "m3ddm_long_video_coarse_to_fine.json"
CLIP = REPO / "workflows" / "media" / "m3ddm_demo_clip.mp4"
REAL_MODEL = "M3DDM-Video-Outpainting"
REAL_VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
RANDOM_MODEL = "m3ddm-random-demo"
RANDOM_CONFIG = {"block_out_channels": [32, 64, 64, 64], "norm_num_groups": 8}


def write_random_models(models: Path) -> None:
    from m3ddm_core import FULL_SIZE_CONFIG
    sys.path.insert(0, str(REPO / ".comfyui"))
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    from random_weights import write_random_m3ddm, write_random_taesd
    write_random_m3ddm(models / "m3ddm" / RANDOM_MODEL, dict(FULL_SIZE_CONFIG, **RANDOM_CONFIG))
    write_random_taesd(models)


def banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("\n" + "!" * width)
    for line in lines:
        print(f"! {line.ljust(width - 4)} !")
    print("!" * width + "\n", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(REPO / ".comfyui" / "models"), help="ComfyUI models folder with the weights")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: 50 with real weights, 4 without)")
    ap.add_argument("--ratio", default="9:16", help="target aspect ratio (default 9:16)")
    ap.add_argument("--output", default=str(REPO / "output"), help="where the mp4 goes")
    args = ap.parse_args()

    models = Path(args.models)
    real = (models / "m3ddm" / REAL_MODEL / "config.json").is_file() and (models / "vae" / REAL_VAE).is_file()
    work = Path(tempfile.mkdtemp(prefix="m3ddm-demo-"))
    if real:
        model_name, vae_name, steps = REAL_MODEL, REAL_VAE, args.steps or 50
        print(f"M3DDM demo: real weights from {models}")
    else:
        models = work / "models"
        write_random_models(models)
        model_name, vae_name, steps = RANDOM_MODEL, "taesd", args.steps or 4
        banner(["NO M3DDM WEIGHTS FOUND -- RUNNING A SMALL RANDOM-WEIGHT MODEL.",
                "The pipeline runs for real, but the new border is meaningless (noise or flat colour).",
                f"For real results put the official '{REAL_MODEL}' folder into",
                f"{Path(args.models) / 'm3ddm'} and {REAL_VAE} into {Path(args.models) / 'vae'}",
                "(see README: Models)."])
    server = ComfyServer(sys.executable, REPO / ".comfyui", work)
    server.prepare(models)
    shutil.copy(CLIP, server.input / CLIP.name)
    overrides = {"Load M3DDM Model": {"model_name": model_name}, "Load VAE": {"vae_name": vae_name},
                 "M3DDM Coarse-to-Fine Outpaint": {"steps": steps},
                 "M3DDM Outpaint Canvas": {"aspect_ratio": args.ratio}}
    t0 = time.time()
    with server:
        server.start()
        prompt = workflow_to_api(json.loads(WORKFLOW.read_text()), server.get("/object_info"), overrides)
        history = server.run(prompt, timeout=6 * 3600)
    if history["status"]["status_str"] != "success":
        print(json.dumps(history["status"], indent=1)[:4000], file=sys.stderr)
        print(f"ComfyUI log: {server.log_path}", file=sys.stderr)
        return 1
    videos = [f for out in history["outputs"].values() for f in out.get("images", []) if isinstance(f, dict)]
    src = server.output / videos[0]["subfolder"] / videos[0]["filename"]
    dst_dir = Path(args.output)
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / ("m3ddm_demo_outpaint.mp4" if real else "m3ddm_demo_outpaint_RANDOM_WEIGHTS.mp4")
    shutil.copy(src, dst)
    print(f"wrote {dst} ({time.time() - t0:.0f} s, {steps} steps, workflow {WORKFLOW.name})")
    if not real:
        banner(["Reminder: RANDOM WEIGHTS were used; the border in the video is meaningless."])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
