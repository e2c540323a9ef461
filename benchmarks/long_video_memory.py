"""Peak memory of a long high-resolution video through a real ComfyUI process: the streamed VIDEO path vs the
IMAGE path.

``--path video`` runs workflow (d) (Load Video -> M3DDM Outpaint Video -> Save Video); ``--path image`` runs the
IMAGE workflow (Load Video -> Get Video Components -> Outpaint Canvas -> Coarse-to-Fine -> Composite -> Create
Video -> Save Video). Random nano M3DDM weights and a random TAESD stand in for the real models (their memory is
not what is measured). A warm-up run on the demo clip loads the models first; the peak resident set of the
server is then measured above that baseline, sampled every 0.2 s (so a run killed for memory still reports the
peak it reached). Usage:
``python benchmarks/long_video_memory.py (--video PATH | --make 1920x1080:150) --ratio 9:16 --steps 1 --path video``.
The last line is ``frames=N in=WxH out=WxH path=P peak_rss_mb=X seconds=S``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from comfy_harness import ComfyServer, workflow_to_api  # noqa: E402
from random_weights import NANO_CONFIG, write_random_m3ddm, write_random_taesd  # noqa: E402

from m3ddm_core import VideoWriter, probe  # noqa: E402

DEMO = REPO / "workflows" / "media" / "m3ddm_demo_clip.mp4"


def make_video(path: Path, width: int, height: int, frames: int, fps: int = 30) -> Path:
    """A synthetic source with motion and texture (and a tone as audio), encoded fast."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    t = np.arange(int(frames / fps * 16000), dtype=np.float32) / 16000
    audio = (np.sin(2 * np.pi * 440 * t)[None] * 0.2).astype(np.float32), 16000
    with VideoWriter(path, Fraction(fps), width, height, audio=audio, preset="ultrafast") as w:
        for i in range(frames):
            base = ((xx + 4 * i) % 256).astype(np.uint8)
            frame = np.stack([base, ((yy + 2 * i) % 256).astype(np.uint8), np.full_like(base, (3 * i) % 256)], -1)
            w.write(np.clip(frame.astype(np.int16) + texture, 0, 255).astype(np.uint8))
    return path


def _status_kb(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def prompt_for(path: str, name: str, object_info: dict, ratio: str, steps: int) -> dict:
    if path == "video":
        wf = json.loads((REPO / "workflows" / "m3ddm_long_video_streaming.json").read_text())
        sampler = "M3DDM Outpaint Video"
    else:
        wf = json.loads((REPO / "workflows" / "m3ddm_long_video_coarse_to_fine.json").read_text())
        sampler = "M3DDM Coarse-to-Fine Outpaint"
    canvas = sampler if path == "video" else "M3DDM Outpaint Canvas"
    overrides = {"Load M3DDM Model": {"model_name": "nano"}, "Load VAE": {"vae_name": "taesd"},
                 "Load Video": {"file": name}, sampler: {"steps": steps, "seed": 1}}
    overrides[canvas] = dict(overrides.get(canvas, {}), aspect_ratio=ratio)
    prompt = workflow_to_api(wf, object_info, overrides)
    # the before/after review video of workflow (b) is not part of the outpainting: left out of the measurement
    review = {k for k, v in prompt.items() if v["class_type"] == "M3DDM_Compare"}
    while review:
        prompt = {k: v for k, v in prompt.items() if k not in review}
        review = {k for k, v in prompt.items()
                  if any(isinstance(x, list) and x and x[0] not in prompt for x in v["inputs"].values())}
    return prompt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", type=Path)
    src.add_argument("--make", help="synthesize WxH:FRAMES (e.g. 1920x1080:150) first")
    ap.add_argument("--ratio", default="9:16")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--path", choices=["video", "image"], default="video")
    ap.add_argument("--timeout", type=float, default=7200)
    ap.add_argument("--phases", action="store_true",
                    help="also print the peak RSS reached during each line of the server log (which phase costs)")
    ap.add_argument("--trace", type=Path,
                    help="write every RSS sample (seconds, rss_mb above the baseline, last M3DDM log line) as TSV")
    args = ap.parse_args()
    from comfy_env import require_comfyui
    comfy_dir = require_comfyui()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.make:
            size, n = args.make.split(":")
            w, h = (int(v) for v in size.split("x"))
            t0 = time.perf_counter()
            video = make_video(work / f"source_{w}x{h}_{n}.mp4", w, h, int(n))
            print(f"made {video.name} in {time.perf_counter() - t0:.0f} s", flush=True)
        else:
            video = args.video
        info = probe(video)
        server = ComfyServer(sys.executable, comfy_dir, work / "comfy", user_directory=work / "comfy" / "user")
        server.prepare()
        write_random_m3ddm(server.models / "m3ddm" / "nano", NANO_CONFIG)
        write_random_taesd(server.models)
        shutil.copy(video, server.input / video.name)
        shutil.copy(DEMO, server.input / DEMO.name)
        server.start()
        try:
            object_info = server.get("/object_info")
            warm = server.run(prompt_for(args.path, DEMO.name, object_info, args.ratio, args.steps), 1200)
            assert warm["status"]["status_str"] == "success", json.dumps(warm["status"])[:2000]
            pid = server.proc.pid
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # reset the high-water mark: the peak below is this run's
            baseline = _status_kb(pid, "VmRSS:")
            peak = {"kb": baseline}
            phases: dict[str, int] = {}
            trace: list[str] = []
            start = time.perf_counter()
            done = threading.Event()

            def sample():
                while not done.is_set():
                    try:
                        rss = _status_kb(pid, "VmRSS:")
                        peak["kb"] = max(peak["kb"], _status_kb(pid, "VmHWM:"), rss)
                    except (FileNotFoundError, ProcessLookupError):
                        return
                    if args.phases or args.trace:
                        lines = [ln for ln in server.log().splitlines()[-50:] if "[M3DDM" in ln or "Prompt" in ln]
                        key = lines[-1].strip()[:110] if lines else "start"
                        phases[key] = max(phases.get(key, 0), rss)
                        trace.append(f"{time.perf_counter() - start:.1f}\t{(rss - baseline) / 1024:.0f}\t{key}")
                    time.sleep(0.2)
            thread = threading.Thread(target=sample, daemon=True)
            thread.start()
            t0 = time.perf_counter()
            outcome = "ok"
            try:
                hist = server.run(prompt_for(args.path, video.name, object_info, args.ratio, args.steps), args.timeout)
                if hist["status"]["status_str"] != "success":
                    outcome = "failed: " + json.dumps(hist["status"])[-300:]
            except RuntimeError as exc:
                outcome = f"server died ({str(exc).splitlines()[0][:120]})"
            seconds = time.perf_counter() - t0
            done.set()
            thread.join()
            outputs = sorted((server.output).rglob("*.mp4"), key=lambda p: p.stat().st_mtime)
            out = probe(outputs[-1]) if outputs and outcome == "ok" else None
        finally:
            server.stop()
    if args.trace:
        args.trace.write_text("seconds\trss_mb\tlog\n" + "\n".join(trace) + "\n")
    for key, kb in phases.items() if args.phases else ():
        print(f"phase rss_mb={(kb - baseline) / 1024:6.0f}  after: {key}")
    print(f"baseline_rss_mb={baseline / 1024:.0f} (server after the warm-up: models loaded) outcome={outcome}")
    out_size = f"{out.width}x{out.height}" if out else "none"
    print(f"frames={info.frames} in={info.width}x{info.height} out={out_size} path={args.path} "
          f"peak_rss_mb={(peak['kb'] - baseline) / 1024:.0f} seconds={seconds:.0f}")


if __name__ == "__main__":
    main()
