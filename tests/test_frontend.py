"""Integration: each example workflow loads in the real ComfyUI frontend (comfyui-frontend-package) in headless
Chromium -- no missing node types, no error dialog -- and the frontend's own UI->API conversion matches the one
the demo and the server tests use. Screenshots are kept as test artifacts."""
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from comfy_env import COMFY_DIR, REPO, require_comfyui

sys.path.insert(0, str(REPO / "scripts"))
from comfy_harness import ComfyServer, workflow_to_api  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
ARTIFACTS = Path(os.environ.get("M3DDM_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_comfyui()
    if not Path(CHROMIUM).exists():
        msg = "Chromium not installed (apt-get install chromium)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    srv = ComfyServer(sys.executable, COMFY_DIR, tmp_path_factory.mktemp("comfy-ui"))
    srv.prepare()
    shutil.copy(REPO / "workflows" / "media" / "m3ddm_demo_clip.mp4", srv.input)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chromium-profile")),
                                                    executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                    viewport={"width": 1800, "height": 1000})
        pg = ctx.new_page()
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        # A fresh user gets the template browser on first visit: mark the tour as done so that any dialog
        # left open after loading a workflow is an error report.
        server.post("/settings/Comfy.TutorialCompleted", True)
        pg.goto(server.base, wait_until="load", timeout=120_000)
        pg.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
        pg.page_errors = errors
        yield pg
        ctx.close()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_in_the_real_frontend(server, page, path):
    workflow = json.loads(path.read_text())
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
    page.wait_for_timeout(1500)
    types = sorted({n["type"] for n in workflow["nodes"]})
    missing = page.evaluate("(types) => types.filter(t => !window.LiteGraph.registered_node_types[t])", types)
    assert missing == [], f"frontend does not know {missing}"
    dialogs = page.evaluate("""() => [...document.querySelectorAll('.p-dialog, .comfy-modal')]
        .filter(d => d.offsetParent !== null).map(d => d.innerText.slice(0, 300))""")
    assert dialogs == [], dialogs
    loaded = page.evaluate("() => window.app.graph._nodes.map(n => n.type).sort()")
    assert loaded == sorted(n["type"] for n in workflow["nodes"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"frontend_{path.stem}.png"))
    # The frontend's own conversion to the API format equals ours (widget order, seeds' control values, links).
    # Inputs the server does not declare (frontend-only widgets such as LoadVideo's preview) are left out.
    ui_prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    info = server.get("/object_info")
    ours = workflow_to_api(workflow, info)

    def declared(prompt):
        out = {}
        for k, v in prompt.items():
            spec = info[v["class_type"]]["input"]
            names = set(spec.get("required", {})) | set(spec.get("optional", {}))
            out[k] = {"class_type": v["class_type"], "inputs": {n: x for n, x in v["inputs"].items() if n in names}}
        return out

    assert declared(ui_prompt) == declared(ours)
    assert page.page_errors == [], page.page_errors
