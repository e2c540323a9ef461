"""Open the ComfyUI the main command installed (.comfyui/0.33.0), with this plugin, for a browser.

It serves http://127.0.0.1:8188 (``--port``) with the models in .comfyui/models (the demo's 'm3ddm-random-DEMO'
and 'taesd' are written there when no M3DDM model is; real weights go beside them, see the README's Models) and the
demo clip in its input folder, so every shipped workflow runs as it is: Workflow > Browse Templates >
ComfyUI-M3DDM, pick the models, Run. Ctrl-C stops it. ComfyUI uses the GPU when there is one (``--cpu``: never)
and shows latent previews while M3DDM samples (``--preview-method auto``).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from comfy_harness import ComfyServer  # noqa: E402
from run_demo import CLIP, COMFY_DIR, UI_PORT, ensure_demo_models  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=UI_PORT)
    ap.add_argument("--models", default=str(REPO / ".comfyui" / "models"), help="ComfyUI models folder")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even where there is a GPU")
    ap.add_argument("--workdir", default=str(REPO / ".comfyui" / "ui"),
                    help="its input, output and user folders (settings, saved workflows, interrupted runs)")
    args = ap.parse_args()
    from m3ddm_core import list_weights

    models = Path(args.models)
    # latent previews while sampling (ComfyUI's default is none; the frontend's settings can change it per run)
    workdir = Path(args.workdir)
    server = ComfyServer(sys.executable, COMFY_DIR, workdir, user_directory=workdir / "user", port=args.port,
                         cpu=args.cpu, extra_args=("--preview-method", "auto"))
    server.prepare(models)
    if not list_weights([models / "m3ddm"]):
        print("no M3DDM model yet: writing the demo's random-weight one:", ", ".join(ensure_demo_models(models)))
    if not (server.input / CLIP.name).exists():
        shutil.copy(CLIP, server.input / CLIP.name)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a kill stops ComfyUI too (the finally below)
    print(f"starting ComfyUI {COMFY_DIR.name} (log: {server.log_path}) ...", flush=True)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    print(f"ComfyUI is at {server.base} -- Workflow > Browse Templates > ComfyUI-M3DDM; models: {models} "
          f"(M3DDM: {', '.join(list_weights([models / 'm3ddm']))}); outputs: {server.output}. Ctrl-C stops it.",
          flush=True)
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        print("stopping ComfyUI")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
