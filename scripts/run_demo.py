"""The main job: outpaint the shipped clip with workflow (d) (or (b)) through a real, headless ComfyUI server.

Uses the real weights when they are installed (models/m3ddm/M3DDM-Video-Outpainting and the SD1.5 VAE
models/vae/vae-ft-mse-840000-ema-pruned.safetensors, in ComfyUI's models folder, .comfyui/models); otherwise a
small random-weight M3DDM of the same architecture and a random TAESD VAE, and it says so loudly (the new border is
then noise). Those stay in the models folder as 'm3ddm-random-DEMO' and 'taesd', so the UI the demo installed
(scripts/open_ui.py) has a model to pick right away. Shows the progress (passes x steps, with an ETA) in the terminal; writes the mp4 into ./output/ and
prints its path.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from comfy_harness import ComfyServer, workflow_to_api  # noqa: E402

WORKFLOWS = {"video": (REPO / "workflows" / "m3ddm_long_video_streaming.json", "M3DDM Outpaint Video"),
             "image": (REPO / "workflows" / "m3ddm_long_video_coarse_to_fine.json", "M3DDM Coarse-to-Fine Outpaint")}
CLIP = REPO / "workflows" / "media" / "m3ddm_demo_clip.mp4"
REAL_MODEL = "M3DDM-Video-Outpainting"
REAL_VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
RANDOM_MODEL = "m3ddm-random-DEMO"
# The ComfyUI the demo runs (scripts/setup_env.sh installs it): the current release
COMFY_DIR = Path(os.environ.get("M3DDM_COMFYUI_DIR", REPO / ".comfyui" / "0.33.0"))
UI_PORT = 8188  # ComfyUI's usual address
RANDOM_CONFIG = {"block_out_channels": [32, 64, 64, 64], "norm_num_groups": 8}


def ensure_demo_models(models: Path) -> list[str]:
    """The demo's random-weight model (``models/m3ddm/m3ddm-random-DEMO``) and TAESD pair (``models/vae_approx``,
    which core Load VAE offers as 'taesd'), each written only where absent (a real TAESD is never replaced):
    what was written."""
    from m3ddm_core import FULL_SIZE_CONFIG
    sys.path.insert(0, str(COMFY_DIR))
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    from random_weights import write_random_m3ddm, write_random_taesd
    written = []
    if not (models / "m3ddm" / RANDOM_MODEL / "config.json").is_file():
        write_random_m3ddm(models / "m3ddm" / RANDOM_MODEL, dict(FULL_SIZE_CONFIG, **RANDOM_CONFIG))
        written.append(f"m3ddm/{RANDOM_MODEL}")
    taesd = [models / "vae_approx" / f"taesd_{part}.safetensors" for part in ("encoder", "decoder")]
    if not any(p.exists() for p in taesd):
        write_random_taesd(models)
        written.append("vae_approx/taesd_{encoder,decoder}.safetensors")
    return written


def banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("\n" + "!" * width)
    for line in lines:
        print(f"! {line.ljust(width - 4)} !")
    print("!" * width + "\n", flush=True)


# What each progress bar of a node counts, in the order the node reports them
PHASES = {"M3DDM_OutpaintVideo": ("encode", "sample"), "M3DDM_CoarseToFine": ("sample",),
          "SaveVideo": ("write",)}


def watch_progress(base_url: str, client_id: str, stop: threading.Event, nodes: dict) -> None:
    """Print ComfyUI's progress messages for our prompt (``nodes``: id -> (title, class type)) as one updating
    terminal line per phase, labelled with what it counts (encode: frames, sample: passes x steps, write: frames)
    and with its own ETA."""
    import asyncio

    import aiohttp

    async def listen():
        started, seen = None, {}
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{base_url.replace('http', 'ws', 1)}/ws?clientId={client_id}") as ws:
                while not stop.is_set():
                    try:
                        msg = await ws.receive(timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            return
                        continue  # binary latent previews
                    event = json.loads(msg.data)
                    if event.get("type") != "progress":
                        continue
                    value, total = event["data"]["value"], event["data"]["max"]
                    node_id = str(event["data"].get("node"))
                    title, kind = nodes.get(node_id, ("", ""))
                    now = time.time()
                    if started is None or value < started[2] or total != started[3] or node_id != started[4]:
                        started = (now, value, value, total, node_id)  # a new phase
                        seen[node_id] = seen.get(node_id, -1) + 1
                    phases = PHASES.get(kind, ())
                    label = f"{title}: {phases[seen[node_id]]}" if seen[node_id] < len(phases) else title
                    started = (*started[:2], value, total, node_id)
                    rate = (value - started[1]) / (now - started[0]) if now > started[0] and value > started[1] else 0
                    eta = f"ETA {((total - value) / rate):5.0f} s" if rate else "ETA    ? s"
                    bar = "#" * int(30 * value / max(total, 1))
                    print(f"\r  {label:<30} [{bar:<30}] {value}/{total}  {eta}", end="", flush=True)
                    if value >= total:
                        print(flush=True)
    try:
        asyncio.run(listen())
    except Exception as exc:  # noqa: BLE001 -- progress display is a convenience; the run goes on without it
        print(f"(no progress display: {exc})", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(REPO / ".comfyui" / "models"), help="ComfyUI models folder with the weights")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: 50 with real weights, 4 without)")
    ap.add_argument("--ratio", default="9:16", help="target aspect ratio (default 9:16)")
    ap.add_argument("--output", default=str(REPO / "output"), help="where the mp4 goes")
    ap.add_argument("--workflow", choices=list(WORKFLOWS), default="video",
                    help="video: workflow (d), streamed VIDEO in/out (default); image: workflow (b), IMAGE batches")
    args = ap.parse_args()

    models = Path(args.models)
    real = (models / "m3ddm" / REAL_MODEL / "config.json").is_file() and (models / "vae" / REAL_VAE).is_file()
    work = Path(tempfile.mkdtemp(prefix="m3ddm-demo-"))
    if real:
        model_name, vae_name, steps = REAL_MODEL, REAL_VAE, args.steps or 50
        print(f"M3DDM demo: real weights from {models}")
    else:
        ensure_demo_models(models)
        model_name, vae_name, steps = RANDOM_MODEL, "taesd", args.steps or 4
        banner(["NO M3DDM WEIGHTS FOUND -- RUNNING A SMALL RANDOM-WEIGHT MODEL.",
                "The pipeline runs for real, but the new border is meaningless (noise or flat colour).",
                f"For real results put the official '{REAL_MODEL}' folder into",
                f"{Path(args.models) / 'm3ddm'} and {REAL_VAE} into {Path(args.models) / 'vae'}",
                "(see README: Models)."])
    server = ComfyServer(sys.executable, COMFY_DIR, work)
    server.prepare(models)
    shutil.copy(CLIP, server.input / CLIP.name)
    workflow, sampler = WORKFLOWS[args.workflow]
    canvas = sampler if args.workflow == "video" else "M3DDM Outpaint Canvas"
    overrides = {"Load M3DDM Model": {"model_name": model_name}, "Load VAE": {"vae_name": vae_name},
                 sampler: {"steps": steps}}
    overrides[canvas] = dict(overrides.get(canvas, {}), aspect_ratio=args.ratio)
    t0 = time.time()
    with server:
        server.start()
        graph = json.loads(workflow.read_text())
        prompt = workflow_to_api(graph, server.get("/object_info"), overrides)
        client_id, stop = uuid.uuid4().hex, threading.Event()
        nodes = {k: (v.get("_meta", {}).get("title", v["class_type"]), v["class_type"]) for k, v in prompt.items()}
        watcher = threading.Thread(target=watch_progress, args=(server.base, client_id, stop, nodes), daemon=True)
        watcher.start()
        time.sleep(0.5)  # connected before the first progress message
        print(f"running workflow {workflow.name} ({steps} steps per pass) ...", flush=True)
        try:
            # the graph goes into the mp4, as the frontend puts it there: drop the video into ComfyUI to get it back
            history = server.run(prompt, timeout=6 * 3600, client_id=client_id, workflow=graph)
        finally:
            stop.set()
            watcher.join(timeout=5)
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
    print(f"wrote {dst} ({time.time() - t0:.0f} s, {steps} steps, workflow {workflow.name})")
    if not real:
        banner(["Reminder: RANDOM WEIGHTS were used; the border in the video is meaningless."])
    print(f"Open the UI: .venv/bin/python scripts/open_ui.py, then http://127.0.0.1:{UI_PORT} -- Workflow > Browse "
          f"Templates > ComfyUI-M3DDM; pick {model_name} in Load M3DDM Model and {vae_name} in Load VAE.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
