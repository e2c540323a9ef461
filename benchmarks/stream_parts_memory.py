"""Memory of the streamed write's parts, each alone in a fresh process: the figures behind the README's notes on
long-video memory, reproducible.

Parts (``--part``; several at once run one after another, each in its own child process):

- ``read``: decode a 1080p source frame by frame (``read_frames``);
- ``composite``: composite 1080p frames onto a 9:16 output (1920x3414), strips of ``STRIP_ROWS`` rows
  against whole bands (the layout before the strips);
- ``encode``: H.264 of 1920x3414 frames, x264's look-ahead scaled to the frame size (``lookahead_frames``)
  against its default of 40 frames;
- ``mux``: the same frames with and without an audio track (the audio is muxed after the video: shows whether
  the MP4 muxer's interleaving queue holds the video packets meanwhile);
- ``write``: the whole streamed write (``write_outpainted``: read, decode stand-in, composite, encode, mux);
- ``bitstream``: whether x264's output follows the CPUs the process may use (one CPU against all).

Every line gives the peak resident set above the child's baseline (taken after imports and set-up) and the
resident set at each quarter of the frames, so growth with the frame count shows as a rising row. Usage:
``python benchmarks/stream_parts_memory.py [--part read,composite,encode,mux,write,bitstream] [--frames 120]``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SOURCE_HW = (1080, 1920)
PARTS = ["read", "composite", "encode", "mux", "write", "bitstream"]


def _kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0


class Meter:
    """Peak RSS above the baseline at construction, and the RSS at each quarter of ``frames``."""

    def __init__(self, frames: int):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark: the peak is what follows
        self.base, self.frames, self.quarters, self.t0 = _kb("VmRSS:"), frames, [], time.perf_counter()

    def frame(self, done: int) -> None:
        if len(self.quarters) < 4 and done * 4 >= (len(self.quarters) + 1) * self.frames:
            self.quarters.append((_kb("VmRSS:") - self.base) / 1024)

    def result(self, **extra) -> dict:
        return dict(extra, peak_rss_mb=round((_kb("VmHWM:") - self.base) / 1024),
                    rss_quarters_mb=[round(q) for q in self.quarters], seconds=round(time.perf_counter() - self.t0, 1))


def _frame(i: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.ogrid[0:h, 0:w]
    base = ((xx + 4 * i) % 256 + 0 * yy).astype(np.uint8)
    return np.stack([base, ((yy + 2 * i) % 256 + 0 * xx).astype(np.uint8), np.full_like(base, (3 * i) % 256)], -1)


def _plan():
    from m3ddm_core import plan_canvas
    return plan_canvas(SOURCE_HW, ratio="9:16")


def _source(path: Path, frames: int) -> Path:
    from m3ddm_core import VideoWriter
    t = np.arange(int(frames / 30 * 16000), dtype=np.float32) / 16000
    audio = (np.sin(2 * np.pi * 440 * t)[None] * 0.2).astype(np.float32), 16000
    with VideoWriter(path, Fraction(30), SOURCE_HW[1], SOURCE_HW[0], audio=audio, preset="ultrafast") as w:
        for i in range(frames):
            w.write(_frame(i, *SOURCE_HW))
    return path


def part_read(frames: int, variant: str, work: Path) -> dict:
    from m3ddm_core import read_frames
    source = _source(work / "source.mp4", frames)
    meter = Meter(frames)
    for i, _ in enumerate(read_frames(source, 0, frames)):
        meter.frame(i + 1)
    return meter.result()


def part_composite(frames: int, variant: str, work: Path) -> dict:
    import importlib

    import torch
    module = importlib.import_module("m3ddm_core.pipeline.composite")  # the module (the package exports the function)
    if variant == "whole-bands":
        module.STRIP_ROWS = 1 << 20  # one strip per band: the layout before the strips
    plan = _plan()
    layout = module.CompositeLayout(plan, 8)
    buffer = torch.empty((1, *plan.output_hw, 3))
    generated = torch.rand(1, *plan.canvas_hw, 3)
    source = _frame(0, *SOURCE_HW)
    meter = Meter(frames)
    for i in range(frames):
        original = torch.from_numpy(source).float().div_(255.0).unsqueeze(0)
        module.composite(original, generated, plan, 8, out=buffer, layout=layout)
        meter.frame(i + 1)
    return meter.result(strip_rows=module.STRIP_ROWS)


def _encode(frames: int, work: Path, audio: bool) -> Meter:
    from m3ddm_core import VideoWriter
    plan = _plan()
    oh, ow = plan.output_hw
    frame = _frame(0, oh, ow)
    sound = None
    if audio:
        t = np.arange(int(frames / 30 * 48000), dtype=np.float32) / 48000
        sound = (np.stack([np.sin(2 * np.pi * 440 * t)] * 2) * 0.2).astype(np.float32), 48000
    meter = Meter(frames)
    with VideoWriter(work / "out.mp4", Fraction(30), ow, oh, audio=sound) as writer:
        for i in range(frames):
            writer.write(np.roll(frame, 4 * i, axis=1))
            meter.frame(i + 1)
    return meter


def part_encode(frames: int, variant: str, work: Path) -> dict:
    from m3ddm_core.media import video_io
    if variant == "x264-default":
        video_io.lookahead_frames = lambda width, height: 40
    oh, ow = _plan().output_hw
    return _encode(frames, work, audio=False).result(lookahead=video_io.lookahead_frames(ow, oh))


def part_mux(frames: int, variant: str, work: Path) -> dict:
    return _encode(frames, work, audio=variant == "audio").result()


def part_write(frames: int, variant: str, work: Path) -> dict:
    import torch
    import torch.nn.functional as F

    from m3ddm_core.media.stream import write_outpainted
    from m3ddm_core.media.video_io import probe
    source = _source(work / "source.mp4", frames)
    plan = _plan()
    h, w = plan.canvas_hw[0] // 8, plan.canvas_hw[1] // 8
    latents = torch.rand(frames, 4, h, w)

    def decode(z: torch.Tensor) -> torch.Tensor:  # a VAE decoder's shape, [k, 4, h, w] -> [k, 8h, 8w, 3]
        return F.interpolate(z[:, :3], scale_factor=8, mode="nearest").permute(0, 2, 3, 1).clamp(0, 1)
    meter = Meter(frames)
    write_outpainted(work / "out.mp4", source, probe(source), 0, frames, plan, latents, decode,
                     on_frame=meter.frame)
    return meter.result()


def part_bitstream(frames: int, variant: str, work: Path) -> dict:
    cpus = sorted(os.sched_getaffinity(0))
    if variant == "one-cpu":
        os.sched_setaffinity(0, cpus[:1])
    _encode(frames, work, audio=False)
    digest = hashlib.sha256((work / "out.mp4").read_bytes()).hexdigest()[:16]
    return dict(cpus=len(os.sched_getaffinity(0)), sha256=digest)


VARIANTS = {"read": ["1080p"], "composite": ["strips", "whole-bands"], "encode": ["scaled", "x264-default"],
            "mux": ["video-only", "audio"], "write": ["streamed"], "bitstream": ["all-cpus", "one-cpu"]}


def child(part: str, variant: str, frames: int) -> None:
    import torch
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    with tempfile.TemporaryDirectory() as tmp:
        result = globals()[f"part_{part}"](frames, variant, Path(tmp))
    print(json.dumps(dict(part=part, variant=variant, frames=frames, **result)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS))
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--child", nargs=2, metavar=("PART", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.frames)
        return
    parts = [p.strip() for p in args.part.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    digests = {}
    for part in parts:
        for variant in VARIANTS[part]:
            out = subprocess.run([sys.executable, __file__, "--child", part, variant, "--frames", str(args.frames)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"part={part} variant={variant} FAILED: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if part == "bitstream":
                digests[variant] = r["sha256"]
                print(f"part=bitstream variant={variant} cpus={r['cpus']} sha256={r['sha256']}")
                continue
            extra = "".join(f" {k}={r[k]}" for k in ("strip_rows", "lookahead") if k in r)
            print(f"part={part} variant={variant} frames={r['frames']}{extra} peak_rss_mb={r['peak_rss_mb']} "
                  f"rss_quarters_mb={'/'.join(map(str, r['rss_quarters_mb']))} seconds={r['seconds']}", flush=True)
    if len(digests) == 2:
        same = len(set(digests.values())) == 1
        print(f"bitstream: one CPU and all CPUs give {'the same' if same else 'different'} H.264 bytes for the same "
              f"frames")


if __name__ == "__main__":
    main()
