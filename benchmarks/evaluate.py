"""Outpainting quality by the papers' protocol, through a real ComfyUI process: for every video and mask ratio,
Load Video -> Get Video Components -> M3DDM Evaluate (borders masked, outpainted back, measured).

Usage: ``python benchmarks/evaluate.py --video A.mp4 [--video B.mp4 | --video FOLDER ...] [--model PATH]
[--vae PATH] [--mask-ratio 0.25 0.666] [--direction horizontal] [--steps 50] [--scheduler pndm] [--seed 0]
[--guidance 2 4] [--working-size 256] [--i3d i3d_torchscript.pt]``. ``--model`` is an M3DDM weights folder or
file (M3DDM or M3DDM+), ``--vae`` an SD 1.x VAE file; without them the random nano model and a random TAESD run
(the plumbing, not quality). FVD needs ``--i3d`` (the I3D TorchScript file used for FVD by StyleGAN-V) and is
computed here over the set of videos.
Prints each run's report, then one line per mask ratio: ``ratio=R videos=N psnr=P ssim=S mse=M region_psnr=P
region_ssim=S lpips=L|none fvd=F|none`` (means over the videos: whole frames, the figures the papers' tables
give, and the generated border alone).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from comfy_harness import ComfyServer  # noqa: E402
from random_weights import NANO_CONFIG, write_random_m3ddm, write_random_taesd  # noqa: E402

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi"}


def videos_of(paths: list[Path]) -> list[Path]:
    found = []
    for p in paths:
        found += sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES) if p.is_dir() else [p]
    if not found:
        raise SystemExit("no videos given")
    return found


def prompt_for(video: str, model: str, vae: str, ratio: float, args, save_prefix: str | None) -> dict:
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": video}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "M3DDM_LoadModel", "inputs": {"model_name": model, "dtype": "auto"}},
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": vae}},
        "5": {"class_type": "M3DDM_Evaluate", "inputs": {
            "images": ["2", 0], "m3ddm_model": ["3", 0], "vae": ["4", 0], "mask_ratio": ratio,
            "direction": args.direction, "paper_size": not args.native_size, "scheduler": args.scheduler,
            "steps": args.steps, "context_guidance": args.guidance[0], "global_guidance": args.guidance[1],
            "seed": args.seed, "fps": ["2", 2], "low_vram": False, "strides": "auto", "schedule": "fixed",
            "working_size": args.working_size}},
    }
    if save_prefix:  # lossless frames back for FVD
        for node, slot, suffix in (("6", 1, "_out"), ("7", 2, "_gt")):
            prompt[node] = {"class_type": "SaveImage",
                            "inputs": {"images": ["5", slot], "filename_prefix": save_prefix + suffix}}
    return prompt


def load_frames(folder: Path, prefix: str):
    import torch
    from PIL import Image
    files = sorted(folder.glob(f"{prefix}_*.png"))
    return torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])).float() / 255


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, action="append", required=True, help="a video file or a folder of them")
    ap.add_argument("--model", type=Path, help="M3DDM weights (folder or file); default: random nano weights")
    ap.add_argument("--vae", type=Path, help="SD 1.x VAE file; default: a random TAESD")
    ap.add_argument("--mask-ratio", type=float, nargs="+", default=[0.25, 0.666])
    ap.add_argument("--direction", default="horizontal", choices=["horizontal", "vertical", "all sides"])
    ap.add_argument("--native-size", action="store_true", help="do not resize to 256x256 first")
    ap.add_argument("--scheduler", default="pndm")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=float, nargs=2, default=[2.0, 4.0], metavar=("S1", "S2"),
                    help="context and global-frame guidance scales (the papers' 2 and 4)")
    ap.add_argument("--working-size", type=int, default=256, help="the model's working canvas (the papers' 256)")
    ap.add_argument("--i3d", type=Path, help="I3D TorchScript file for FVD")
    ap.add_argument("--timeout", type=float, default=7200)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from comfy_env import require_comfyui
    videos = videos_of(args.video)
    comfy_dir = require_comfyui()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "comfy"
        server = ComfyServer(sys.executable, comfy_dir, work, user_directory=work / "user")
        server.prepare()
        if args.model:
            model = args.model.name
            (server.models / "m3ddm" / model).symlink_to(args.model.resolve())
        else:
            model = "nano-random"
            write_random_m3ddm(server.models / "m3ddm" / model, NANO_CONFIG)
        if args.vae:
            vae = args.vae.name
            (server.models / "vae" / vae).symlink_to(args.vae.resolve())
        else:
            vae = "taesd"
            write_random_taesd(server.models)
        server.start()
        try:
            evaluate_on(server, videos, model, vae, args)
        finally:
            server.stop()


def evaluate_on(server: ComfyServer, videos: list[Path], model: str, vae: str, args: argparse.Namespace) -> None:
    """Run the protocol on a running ``server`` that lists ``model`` and ``vae``; prints the reports and the means.
    The videos are put into its input folder under names of their own (hard links where the file system allows:
    current ComfyUI refuses input files that resolve outside the input folder, so no symbolic links)."""
    rows: dict[float, list[dict]] = {r: [] for r in args.mask_ratio}
    clips: dict[float, tuple[list, list]] = {r: ([], []) for r in args.mask_ratio}
    run_id = uuid.uuid4().hex[:8]
    for i, v in enumerate(videos):
        name = f"eval_{run_id}_{i:04d}{v.suffix}"
        try:
            os.link(v, server.input / name)
        except OSError:  # another file system
            shutil.copyfile(v, server.input / name)
        for ratio in args.mask_ratio:
            prefix = f"eval/{run_id}_{i:04d}_{ratio:g}" if args.i3d else None
            hist = server.run(prompt_for(name, model, vae, ratio, args, prefix), args.timeout)
            if hist["status"]["status_str"] != "success":
                raise SystemExit(f"{v.name}: " + json.dumps(hist["status"])[-1500:])
            ui = hist["outputs"]["5"]
            print(f"--- {v.name}, mask ratio {ratio:g}\n{ui['text'][0]}", flush=True)
            rows[ratio].append(ui["metrics"][0])
            if prefix:
                clips[ratio][0].append(load_frames(server.output / "eval", f"{run_id}_{i:04d}_{ratio:g}_out"))
                clips[ratio][1].append(load_frames(server.output / "eval", f"{run_id}_{i:04d}_{ratio:g}_gt"))
    from m3ddm_core import frechet_distance, i3d_features
    for ratio, found in rows.items():
        mean = {k: float(np.mean([r["frame"][k] for r in found])) for k in ("psnr", "ssim", "mse")}
        region = {k: float(np.mean([r["region"][k] for r in found])) for k in ("psnr", "ssim")}
        lpips = [r["frame"]["lpips"] for r in found if "lpips" in r["frame"]]
        fvd = "none"
        if args.i3d and len(found) >= 2:
            outs, truths = clips[ratio]
            fvd = f"{frechet_distance(i3d_features(outs, args.i3d), i3d_features(truths, args.i3d)):.1f}"
        print(f"ratio={ratio:g} videos={len(found)} psnr={mean['psnr']:.2f} ssim={mean['ssim']:.4f} "
              f"mse={mean['mse']:.5f} region_psnr={region['psnr']:.2f} region_ssim={region['ssim']:.4f} "
              f"lpips={f'{np.mean(lpips):.4f}' if len(lpips) == len(found) else 'none'} fvd={fvd}")
    if not args.i3d or len(videos) < 2:
        print("fvd: not computed: give --i3d (the I3D TorchScript file) and at least two videos")


if __name__ == "__main__":
    main()
