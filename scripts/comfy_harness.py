"""Drive a real ComfyUI server headless: start it with this plugin linked in, convert UI-format workflows to the
API format, queue them and wait for the result. Used by the demo (scripts/run_demo.py) and the integration tests.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR_NAME = "ComfyUI-M3DDM"
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
LINK_TYPES_ARE_WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # UI-only nodes, never sent to the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI process on 127.0.0.1 with its own models/input/output folders under ``workdir``.

    ``front_end_root``: a frontend web root (the folder with index.html, e.g. unpacked by
    scripts/install_frontend.sh) to serve instead of the comfyui-frontend-package installed in the venv; passed as
    ComfyUI's ``--front-end-root``, which overrides ``--front-end-version`` and needs no network.
    ``user_directory``: where the server keeps user data (frontend settings, saved workflows) instead of the shared
    ``<comfy_dir>/user``; passed as ``--user-directory``, so that a fresh folder gives a first-visit user.
    ``port``: a fixed port (default: a free one); ``cpu``: ComfyUI's ``--cpu`` (off: it picks the GPU if any);
    ``extra_args``: more of ComfyUI's command-line options.
    """

    def __init__(self, python: str, comfy_dir: Path, workdir: Path, front_end_root: Optional[Path] = None,
                 user_directory: Optional[Path] = None, port: Optional[int] = None, cpu: bool = True,
                 extra_args: tuple[str, ...] = ()):
        self.python, self.comfy_dir, self.workdir, self.cpu = python, Path(comfy_dir), Path(workdir), cpu
        self.extra_args = list(extra_args)
        self.front_end_root = Path(front_end_root).resolve() if front_end_root is not None else None
        self.user_directory = Path(user_directory).resolve() if user_directory is not None else None
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.models = self.workdir / "models"
        self.input = self.workdir / "input"
        self.output = self.workdir / "output"
        self.log_path = self.workdir / "server.log"
        self.proc: Optional[subprocess.Popen] = None

    def prepare(self, models_dir: Optional[Path] = None) -> None:
        for d in (self.input, self.output, self.workdir / "custom_nodes"):
            d.mkdir(parents=True, exist_ok=True)
        link = self.workdir / "custom_nodes" / PLUGIN_DIR_NAME
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        models = Path(models_dir) if models_dir else self.models
        for sub in ("m3ddm", "vae", "vae_approx", "upscale_models"):
            (models / sub).mkdir(parents=True, exist_ok=True)
        yaml = self.workdir / "extra_model_paths.yaml"
        yaml.write_text("m3ddm_run:\n"
                        f"  base_path: {self.workdir}\n"
                        "  custom_nodes: custom_nodes/\n"
                        f"  m3ddm: {models / 'm3ddm'}\n"
                        f"  vae: {models / 'vae'}\n"
                        f"  vae_approx: {models / 'vae_approx'}\n"
                        f"  upscale_models: {models / 'upscale_models'}\n")

    def start(self, timeout: float = 300) -> None:
        cmd = [self.python, "main.py", *(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--output-directory", str(self.output), "--input-directory", str(self.input),
               "--extra-model-paths-config", str(self.workdir / "extra_model_paths.yaml"), *self.extra_args]
        if self.front_end_root is not None:
            if not (self.front_end_root / "index.html").is_file():
                raise FileNotFoundError(f"no frontend web root (index.html) at {self.front_end_root}")
            cmd += ["--front-end-root", str(self.front_end_root)]
        if self.user_directory is not None:
            self.user_directory.mkdir(parents=True, exist_ok=True)
            cmd += ["--user-directory", str(self.user_directory)]
        self.proc = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()  # a server that failed to come up is not left running
            raise

    def _wait_ready(self, timeout: float) -> None:
        t0 = time.time()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}; log:\n{self.log()[-4000:]}")
            try:
                info = self.get("/object_info/M3DDM_LoadModel")
                if "M3DDM_LoadModel" in info:
                    return
                raise RuntimeError(f"ComfyUI started without the M3DDM nodes; log:\n{self.log()[-4000:]}")
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() - t0 > timeout:
                    raise TimeoutError(f"ComfyUI not ready after {timeout} s; log:\n{self.log()[-4000:]}")
                time.sleep(1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return json.load(r)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def queue(self, prompt: dict, client_id: Optional[str] = None, workflow: Optional[dict] = None) \
            -> tuple[int, Any]:
        """Queue a prompt; ``client_id`` routes its progress messages to that websocket client; ``workflow`` (the
        UI-format graph) is stored in what the output nodes save, as the frontend sends it, so that dropping a
        saved file back into ComfyUI gives the graph."""
        body = {"prompt": prompt, **({"client_id": client_id} if client_id else {})}
        if workflow is not None:
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        return self.post("/prompt", body)

    def wait(self, prompt_id: str, timeout: float = 1800) -> dict:
        t0 = time.time()
        while time.time() - t0 < timeout:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                return hist[prompt_id]
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running the prompt; log:\n{self.log()[-4000:]}")
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")

    def run(self, prompt: dict, timeout: float = 1800, client_id: Optional[str] = None,
            workflow: Optional[dict] = None) -> dict:
        status, body = self.queue(prompt, client_id, workflow)
        if status != 200:
            raise RuntimeError(f"ComfyUI refused the prompt ({status}): {json.dumps(body)[:3000]}")
        return self.wait(body["prompt_id"], timeout)


DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # a combo whose chosen option brings inputs of its own (current ComfyUI; 0.3.75 has none)


def _ordered(spec: dict, order: Optional[dict] = None) -> list[tuple[str, Any]]:
    order = order or {k: list(spec.get(k, {})) for k in ("required", "optional")}
    return [(name, spec[section][name]) for section in ("required", "optional")
            for name in order.get(section, []) if name in spec.get(section, {})]


def _input_specs(info: dict) -> list[tuple[str, Any]]:
    return _ordered(info["input"], info.get("input_order"))


def _is_widget(spec: Any) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in LINK_TYPES_ARE_WIDGETS or kind == DYNAMIC_COMBO


def _has_control(name: str, spec: Any) -> bool:
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return bool(opts.get("control_after_generate")) or (spec[0] == "INT" and name in ("seed", "noise_seed"))


def _has_upload(spec: Any) -> bool:
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return any(k.endswith("_upload") and v for k, v in opts.items())


def _default(spec: Any) -> Any:
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in opts:
        return opts["default"]
    choices = spec[0] if isinstance(spec[0], list) else opts.get("options")
    if choices:  # a combo without a default shows its first option
        return choices[0]["key"] if isinstance(choices[0], dict) else choices[0]
    return None


def _take_widget(name: str, spec: Any, values: list, inputs: dict) -> None:
    """Move the widget ``name``'s value from the front of ``values`` (the node's ``widgets_values``) into
    ``inputs``, with the frontend's extra values after it. A dynamic combo's chosen option brings its own widgets,
    saved right after it and sent as ``name.child`` (nested options as ``name.child.grandchild``), as the frontend
    sends them. A widget the saved workflow has no value for (one a newer ComfyUI added, such as Create Video's
    bit_depth) takes its default, as the frontend gives it when it loads the workflow."""
    value = values.pop(0) if values else _default(spec)
    if _has_control(name, spec) and values and values[0] in CONTROL_VALUES:
        values.pop(0)
    if _has_upload(spec) and values and values[0] in ("image", "video", "audio", None):
        values.pop(0)
    if value is None:
        return
    inputs[name] = value
    if spec[0] == DYNAMIC_COMBO:
        chosen = next((o for o in spec[1].get("options", []) if o["key"] == value), None)
        if chosen is None:
            raise ValueError(f"{value!r} is not an option of {name} ({[o['key'] for o in spec[1]['options']]})")
        for child, child_spec in _ordered(chosen.get("inputs", {})):
            if _is_widget(child_spec):
                _take_widget(f"{name}.{child}", child_spec, values, inputs)


def workflow_to_api(workflow: dict, object_info: dict, overrides: Optional[dict] = None) -> dict:
    """UI-format workflow (``nodes``/``links``, v0.4) -> API-format prompt.

    Widget values are read from ``widgets_values`` in input order (plus the frontend's extra "control after
    generate" value after seeds; a dynamic combo's chosen option's widgets after it, sent as dotted names).
    ``overrides``: ``{node title or id: {input: value}}`` applied afterwards.
    """
    links = {l[0]: l for l in workflow.get("links", [])}
    prompt: dict[str, dict] = {}
    titles: dict[str, str] = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0 or node["type"] in FRONTEND_ONLY:
            continue
        ctype = node["type"]
        if ctype not in object_info:
            raise KeyError(f"node type {ctype!r} (node {node['id']}) is not installed on this server")
        linked = {i["name"]: i.get("link") for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs: dict[str, Any] = {}
        for name, spec in _input_specs(object_info[ctype]):
            if _is_widget(spec):
                _take_widget(name, spec, values, inputs)
            if name in linked:
                link = links[linked[name]]
                inputs[name] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": ctype, "inputs": inputs,
                                   "_meta": {"title": node.get("title", ctype)}}
        titles[node.get("title", ctype)] = str(node["id"])
    for key, changes in (overrides or {}).items():
        nid = titles.get(key, str(key))
        if nid not in prompt:
            raise KeyError(f"override target {key!r} is not a node of the workflow")
        prompt[nid]["inputs"].update(changes)
    return prompt
