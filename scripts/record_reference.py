"""Record the four front-end paths of tests/test_recordings.py on this machine, with the reference commit's code.

The recordings are SHA-256 digests of float outputs, and another CPU's kernels (another vector width, another
BLAS path) round differently, so one machine's digests cannot match another's. This adds this machine's set to
``tests/data/recordings.json``: it checks out the commit the recordings were first made on (before the engine
redesign) in a temporary worktree, swaps its test's ``digest``/``check`` for a recorder (this file's digest and
values functions, so both sides hash alike), runs its four recording tests there and appends what they produced.
The code under test never records its own expected outputs.

    .venv/bin/python scripts/record_reference.py            # then commit tests/data/recordings.json
"""
from __future__ import annotations

import ast
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = "049e130"  # "Recordings of the four front-end paths ... before the engine redesign (issue 22)"
RECORDINGS = REPO / "tests" / "data" / "recordings.json"
TEST = "tests/test_recordings.py"


def machine() -> str:
    """What decides how floats round here: the CPU, torch's vector level, torch and diffusers."""
    import diffusers
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or platform.machine()) \
        if Path("/proc/cpuinfo").is_file() else platform.processor() or platform.machine()
    return (f"{cpu}, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
            f"diffusers {diffusers.__version__}")


def function_source(source: str, name: str) -> str:
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.get_source_segment(source, node)


def recorder() -> str:
    """The reference test's new ``digest`` (outputs kept whole) and ``check`` (writes digests and values)."""
    current = (REPO / TEST).read_text()
    return "\n\n".join([
        "def digest(t):\n    return t",
        function_source(current, "digest").replace("def digest(", "def _digest(", 1),
        function_source(current, "values"),
        "def check(name, observed):\n"
        "    path = os.environ['M3DDM_RECORD_OUT']\n"
        "    data = json.loads(Path(path).read_text()) if Path(path).is_file() else {}\n"
        "    data[name] = {'outputs': {k: _digest(v) for k, v in observed.items()},\n"
        "                  'values': {k: values(v) for k, v in observed.items() if k != 'inputs'}}\n"
        "    Path(path).write_text(json.dumps(data))",
    ])


def patched(source: str) -> str:
    for name in ("digest", "check"):
        source = source.replace(function_source(source, name), f"# {name}: see below", 1)
    return source + "\n\n" + recorder() + "\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tree, out = Path(tmp) / "reference", Path(tmp) / "recorded.json"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), REFERENCE], cwd=REPO, check=True)
        try:
            test = tree / TEST
            test.write_text(patched(test.read_text()))
            env = dict(os.environ, M3DDM_RECORD_OUT=str(out), M3DDM_COMFYUI_DIR=str(REPO / ".comfyui" / "0.3.75"))
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST], cwd=tree,
                                 env=env)
            recorded = json.loads(out.read_text()) if out.is_file() else {}
            if run.returncode or len(recorded) != 3:
                print(f"the reference run failed or recorded {sorted(recorded)}: nothing added", file=sys.stderr)
                return 1
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)
    data = json.loads(RECORDINGS.read_text())
    entry = {"machine": f"{machine()} (recorded with {REFERENCE})",
             "outputs": {k: v["outputs"] for k, v in recorded.items()},
             "values": {k: v["values"] for k, v in recorded.items()}}
    data["sets"] = [s for s in data["sets"] if s["machine"] != entry["machine"]] + [entry]
    RECORDINGS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"added the recordings of {entry['machine']} to {RECORDINGS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
