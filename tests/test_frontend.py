"""Integration: each example workflow loads in the real ComfyUI frontend (comfyui-frontend-package) in headless
Chromium -- no missing node types, no dialog, toast or issue report -- the frontend's own UI->API conversion matches
the one the demo and the server tests use, and queued from the page (the frontend converts it) it writes its
videos. Screenshots are kept as test artifacts.

Every test runs on three ComfyUI + frontend pairs:
- the current ComfyUI (0.33.0, the session's server, the conftest fixture comfy_server) with the frontend it pins
  (1.48.7, in the venv), served by the server itself;
- the same server with the newest frontend release (NEWEST_FRONTEND in scripts/setup_env.sh), unpacked by
  scripts/install_frontend.sh to .frontends/VERSION and served by tests/frontend_proxy.py in front of it, as
  ComfyUI's --front-end-root would serve it;
- the floor, ComfyUI 0.3.75 (pyproject's requires-comfyui), started for these tests with its own frontend
  (FLOOR_FRONTEND, 1.32.9) served with --front-end-root.
"""
import importlib.metadata
import json
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from comfy_env import COMFY_DIR, FLOOR_COMFY_DIR, REPO, TEST_MODEL, TEST_UPSCALER, start_test_server

sys.path.insert(0, str(REPO / "scripts"))
from comfy_harness import free_port, workflow_to_api  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
ARTIFACTS = Path(os.environ.get("M3DDM_TEST_ARTIFACTS", REPO / "test-artifacts"))
FRONTENDS_DIR = Path(os.environ.get("M3DDM_FRONTENDS_DIR", REPO / ".frontends"))

# Anything of these that is visible after loading a workflow is a report to the user. 1.32.9 (the floor's) draws
# dialogs with
# PrimeVue (.p-dialog inside a fixed mask) and toasts as .p-toast-message[role=alert]; 1.58.1 draws dialogs as
# fixed [role=dialog] elements (offsetParent is null there, so visibility is checkVisibility(), not offsetParent),
# toasts as li[role=alert] and workflow problems (missing nodes/models/media) in an issues overlay. Screen-reader
# live regions (1.58.1 keeps an empty [role=alert] in a 1x0 px .sr-only box) are not drawn and do not count.
BLOCKERS = ("[role=dialog], [role=alertdialog], dialog[open], .p-dialog, .comfy-modal, [role=alert], "
            "[data-testid=error-overlay]")
VISIBLE_BLOCKERS_JS = f"""() => [...document.querySelectorAll({json.dumps(BLOCKERS)})]
    .filter(e => e.checkVisibility({{checkOpacity: true, checkVisibilityCSS: true}}))
    .filter(e => {{ const r = e.getBoundingClientRect(); return r.width > 2 && r.height > 2; }})
    .filter(e => !e.parentElement || !e.parentElement.closest({json.dumps(BLOCKERS)}))
    .map(e => (e.getAttribute('role') || e.tagName.toLowerCase()) + ': ' + e.innerText.trim().slice(0, 300))"""

# Same-origin requests that may fail while the page starts and loads workflows, and why. Any other failing request
# (e.g. an endpoint the frontend needs but this backend lacks) fails the test.
EXPECTED_HTTP_ERRORS = {
    "/user.css": "optional user stylesheet, 404 unless the user made one",
    "/api/userdata/user.css": "same, from the user directory",
    "/api/userdata": "listing the saved workflows/subgraphs folders of a fresh user directory: 404 = none yet",
    "/api/userdata/comfy.templates.json": "legacy saved node templates: none for a fresh user",
}
EMPTY_WORKFLOW = {"last_node_id": 0, "last_link_id": 0, "nodes": [], "links": [], "groups": [], "config": {},
                  "extra": {}, "version": 0.4}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _require(ok: bool, msg: str) -> None:
    if not ok:
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)


def _setup_value(name: str) -> str:
    m = re.search(rf"^{name}=(\S+)", (REPO / "scripts" / "setup_env.sh").read_text(), re.M)
    assert m, f"scripts/setup_env.sh does not set {name}"
    return m.group(1)


def _pinned_version(comfy_dir: Path) -> str:
    """The comfyui-frontend-package release a ComfyUI pins in its requirements.txt."""
    try:
        m = re.search(r"^comfyui-frontend-package==(\S+)", (comfy_dir / "requirements.txt").read_text(), re.M)
    except FileNotFoundError:
        return "not-installed"
    return m.group(1) if m else "unpinned"


def _frontends() -> list:
    """(ComfyUI: "current" or "floor", frontend version, web root or None for the venv's package)."""
    pinned = _pinned_version(COMFY_DIR)
    newest = os.environ.get("M3DDM_NEWEST_FRONTEND") or _setup_value("NEWEST_FRONTEND")
    floor = _setup_value("FLOOR_FRONTEND")
    out = [pytest.param(("current", pinned, None), id=f"current-frontend-{pinned}")]
    if newest != pinned:
        out.append(pytest.param(("current", newest, FRONTENDS_DIR / newest), id=f"current-frontend-{newest}"))
    out.append(pytest.param(("floor", floor, FRONTENDS_DIR / floor), id=f"floor-frontend-{floor}"))
    return out


@pytest.fixture(scope="module", params=_frontends())
def frontend(request):
    """(ComfyUI, version, web root or None for the venv's comfyui-frontend-package)."""
    comfy, version, root = request.param
    if root is not None:
        _require((root / "index.html").is_file(),
                 f"comfyui-frontend-package {version} is not unpacked at {root}; run "
                 f"bash scripts/install_frontend.sh {version} {root} (bash scripts/setup_env.sh does)")
    else:
        installed = importlib.metadata.version("comfyui-frontend-package")
        assert installed == version, f"the venv has frontend {installed}, ComfyUI at {COMFY_DIR} pins {version}"
    return comfy, version, root


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for both frontends; each gets a fresh context (a first-visit profile). Module-scoped:
    Playwright's sync API keeps an event loop running in this thread while it is open, which the node tests'
    asyncio.run() would refuse."""
    from playwright.sync_api import sync_playwright
    _require(Path(CHROMIUM).exists(), "Chromium not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(frontend, comfy_server, tmp_path_factory):
    """The ComfyUI the frontend runs on: the session's server (current ComfyUI) serving its own frontend, or with a
    FrontendProxy in front of it serving another (its web root answered locally, everything else by the server);
    or a floor ComfyUI started with its own frontend."""
    comfy, version, root = frontend
    if comfy == "floor":
        _require((FLOOR_COMFY_DIR / "main.py").is_file(),
                 f"the floor ComfyUI is not installed at {FLOOR_COMFY_DIR}; run bash scripts/setup_env.sh")
        floor = start_test_server(tmp_path_factory.mktemp("floor"), FLOOR_COMFY_DIR, front_end_root=root)
        from conftest import COMFYUI_VERSIONS
        COMFYUI_VERSIONS.add(f"{floor.get('/system_stats')['system']['comfyui_version']} ({floor.comfy_dir})")
        yield floor
        floor.stop()
        _keep_log(floor, "comfyui_floor_server.log")
        return
    # A first-visit user for each frontend: no settings left by another frontend or test.
    for settings in (comfy_server.user_directory / "default").glob("comfy.settings.json"):
        settings.unlink()
    if root is None:
        yield comfy_server
        return
    from frontend_proxy import FrontendProxy
    proxy = FrontendProxy(comfy_server, _server_web_root(comfy_server), root, free_port()).start()
    yield proxy
    proxy.stop()


def _keep_log(server, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.log_path, ARTIFACTS / name)


def _server_web_root(server) -> Path:
    return Path(re.search(r"\[Prompt Server\] web root: (.+)", server.log()).group(1).strip())


@pytest.fixture(scope="module")
def page(server, frontend, browser):
    comfy, version, root = frontend
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1800, "height": 1000})
    pg = ctx.new_page()
    errors, http_errors, console_errors = [], [], []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: console_errors.append(m.text[:500]) if m.type == "error" else None)
    pg.on("response", lambda r: http_errors.append(f"{r.status} {r.url}")
          if r.status >= 400 and r.url.startswith(server.base) else None)
    # A fresh user gets the template browser on first visit (both frontends; 1.58.1 also records
    # Comfy.InstalledVersion itself): mark the tour as done so that any dialog left open after loading a
    # workflow is an error report.
    server.post("/settings/Comfy.TutorialCompleted", True)
    try:
        pg.goto(server.base, wait_until="load", timeout=120_000)
        pg.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
    except Exception as e:  # say why the frontend did not come up on this backend
        try:
            pg.screenshot(path=str(ARTIFACTS / f"frontend_{version}_startup_failure.png"), timeout=60_000)
        except Exception:
            pass
        pytest.fail(f"frontend {version} did not start: {e}\npage errors: {errors}\nconsole errors: "
                    f"{console_errors[-20:]}\nfailed requests: {http_errors}\nserver log:\n{server.log()[-3000:]}")
    served = pg.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__")
    if served != version:
        pytest.fail(f"expected frontend {version} (web root {root or 'of the venv package'}), "
                    f"the page runs {served}")
    pg.page_errors, pg.http_errors = errors, http_errors
    yield pg
    ctx.close()


def test_the_expected_frontend_is_served(server, page, frontend, record_property):
    comfy, version, root = frontend
    assert page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__") == version
    served = server.get("/system_stats")["system"]["comfyui_version"]
    record_property("comfyui_version", served)  # recorded (the junit report, the log), not asserted
    print(f"ComfyUI {served} ({comfy}) with frontend {version}")
    web_root = server.web_root if isinstance(getattr(server, "web_root", None), Path) else _server_web_root(server)
    if root is not None:
        assert Path(web_root).resolve() == root.resolve()
    else:
        assert Path(web_root).parts[-2:] == ("comfyui_frontend_package", "static"), web_root


def test_the_blocker_check_sees_dialogs_and_toasts(server, page):
    """The check the workflow tests rely on is not blind on this frontend: it sees a toast and the template browser
    (first-visit dialog), and nothing once they are gone."""
    def blockers(condition):
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        try:
            page.wait_for_function(f"() => {{ const b = ({VISIBLE_BLOCKERS_JS})(); return {condition}; }}",
                                   timeout=30_000)
        except PlaywrightTimeout:
            pytest.fail(f"blockers never became {condition!r}: {page.evaluate(VISIBLE_BLOCKERS_JS)}")

    # Start from an empty graph: the default graph a fresh user gets names model files this server lacks, which
    # 1.58.1 reports (a moment after the page is up) as issues.
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", EMPTY_WORKFLOW)
    page.wait_for_timeout(1500)
    assert page.evaluate(VISIBLE_BLOCKERS_JS) == []
    page.evaluate("() => window.app.extensionManager.toast.add({severity: 'error', summary: 'probe', life: 3000})")
    blockers("b.some(t => t.includes('probe'))")
    blockers("b.length === 0")
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    blockers("b.some(t => t.includes('Templates'))")
    # Not every version closes it on Escape (1.32.9 does not): start the page again instead.
    page.reload(wait_until="load", timeout=120_000)
    page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", EMPTY_WORKFLOW)
    page.wait_for_timeout(1500)
    assert page.evaluate(VISIBLE_BLOCKERS_JS) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_in_the_real_frontend(server, page, frontend, path):
    comfy, version, root = frontend
    workflow = json.loads(path.read_text())
    _load_graph(page, workflow)
    page.screenshot(path=str(ARTIFACTS / f"frontend_{version}_{path.stem}.png"), timeout=120_000)
    types = sorted({n["type"] for n in workflow["nodes"]})
    missing = page.evaluate("(types) => types.filter(t => !window.LiteGraph.registered_node_types[t])", types)
    assert missing == [], f"frontend does not know {missing}"
    assert page.evaluate(VISIBLE_BLOCKERS_JS) == []
    loaded = page.evaluate("() => (window.app.graph.nodes ?? window.app.graph._nodes).map(n => n.type).sort()")
    assert loaded == sorted(n["type"] for n in workflow["nodes"])
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
    # A second look: 1.58.1 reports missing models/media after asynchronous look-ups.
    assert page.evaluate(VISIBLE_BLOCKERS_JS) == []
    assert page.page_errors == [], page.page_errors
    unexpected = [e for e in page.http_errors if urlparse(e.split(" ", 1)[1]).path not in EXPECTED_HTTP_ERRORS]
    assert unexpected == [], f"requests the {comfy} ComfyUI failed: {unexpected}"


# A newcomer's first look: the loaded workflow on a 1600x1000 screen, as its saved view (extra.ds) shows it. Each
# node's box on screen (graph coordinates through the canvas's ds: screen = (graph + offset) * scale, the title bar
# of LiteGraph.NODE_TITLE_HEIGHT above pos included) must lie in the window, and a 7x7 grid of points over it must
# hit the canvas (or the node's own DOM widgets: the video preview, the Note's text), not the side bar, the tabs,
# the Run bar, a banner or the minimap drawn over the canvas.
NODES_IN_VIEW_JS = """() => {
    const c = window.app.canvas, ds = c.ds, el = c.canvas, r = el.getBoundingClientRect();
    const W = window.innerWidth, H = window.innerHeight, T = window.LiteGraph.NODE_TITLE_HEIGHT;
    const own = '.dom-widget, .dom-widget-container, .comfy-multiline-input, video, textarea';
    const nodes = (window.app.graph.nodes ?? window.app.graph._nodes).map(n => {
        const sx = x => r.left + (x + ds.offset[0]) * ds.scale, sy = y => r.top + (y + ds.offset[1]) * ds.scale;
        const box = [sx(n.pos[0]), sy(n.pos[1] - T), sx(n.pos[0] + n.size[0]), sy(n.pos[1] + n.size[1])];
        const inside = box[0] >= Math.max(0, r.left) && box[1] >= Math.max(0, r.top)
            && box[2] <= Math.min(W, r.right) && box[3] <= Math.min(H, r.bottom);
        const covered = [];
        for (let i = 0; i <= 6; i++) for (let j = 0; j <= 6; j++) {
            const x = box[0] + 2 + (box[2] - box[0] - 4) * i / 6, y = box[1] + 2 + (box[3] - box[1] - 4) * j / 6;
            const e = document.elementFromPoint(x, y);
            if (e === el || (e && e.closest(own))) continue;
            const what = e ? `${e.tagName}.${e.className}`.slice(0, 80) : 'nothing';
            covered.push(`(${Math.round(x)}, ${Math.round(y)}): ${what}`);
        }
        return {id: String(n.id), type: n.type, title: n.title, box: box.map(v => Math.round(v)), inside, covered};
    });
    return {window: [W, H], scale: ds.scale, offset: [...ds.offset], nodes};
}"""
OUTPUT_NODES = {"SaveVideo", "PreviewImage", "CreateVideo"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_is_all_in_view_at_1600x1000_when_loaded(server, page, frontend, path):
    """Issue 32: "The Save Video and Create Video nodes sit off-screen at 1600 px wide". Loaded as a user loads it,
    at 1600x1000, every node (the outputs included) is on screen and uncovered without panning, no two overlap,
    and the saved zoom keeps the titles readable (>= 0.6). A screenshot per workflow is kept."""
    comfy, version, root = frontend
    workflow = json.loads(path.read_text())
    size = page.viewport_size
    page.set_viewport_size({"width": 1600, "height": 1000})
    try:
        page.wait_for_timeout(500)  # the canvas follows the window's size
        _load_graph(page, workflow)
        page.screenshot(path=str(ARTIFACTS / f"layout_1600x1000_{comfy}_{version}_{path.stem}.png"), timeout=120_000)
        view = page.evaluate(NODES_IN_VIEW_JS)
    finally:
        page.set_viewport_size(size)
    assert view["window"] == [1600, 1000]
    saved = workflow["extra"]["ds"]
    assert view["scale"] == pytest.approx(saved["scale"]) and view["offset"] == pytest.approx(saved["offset"]), \
        f"the saved view was not restored: {view['scale']} {view['offset']}"
    assert view["scale"] >= 0.6, "titles too small to read at the saved zoom"
    nodes = view["nodes"]
    assert sorted(n["id"] for n in nodes) == sorted(str(n["id"]) for n in workflow["nodes"])
    assert {n["type"] for n in nodes} & OUTPUT_NODES
    out_of_view = [f"{n['title']} ({n['type']}) at {n['box']}: " + ("outside the window" if not n["inside"] else
                   f"covered at {n['covered'][:3]}") for n in nodes if not n["inside"] or n["covered"]]
    assert out_of_view == [], f"{len(out_of_view)} of {len(nodes)} nodes not in view at 1600x1000:\n" + \
        "\n".join(out_of_view)
    overlapping = [(a["title"], b["title"]) for i, a in enumerate(nodes) for b in nodes[i + 1:]
                   if a["box"][0] < b["box"][2] and b["box"][0] < a["box"][2]
                   and a["box"][1] < b["box"][3] and b["box"][1] < a["box"][3]]
    assert overlapping == []


THUMBNAIL_JS = """async (url) => {
    const r = await fetch(url);
    const blob = await r.blob();
    const size = r.ok ? await createImageBitmap(blob).then(b => [b.width, b.height], () => null) : null;
    return {status: r.status, type: r.headers.get('content-type'), bytes: blob.size, size};
}"""
TEMPLATE_SEARCH = "[role=dialog] input[type=text], .p-dialog input[type=text], [role=dialog] input[type=search]"


def test_the_template_browser_shows_each_workflow_with_its_thumbnail(server, page, frontend):
    """Workflow -> Browse Templates, searched for "m3ddm" as a user would: the frontend lists the pack's templates
    (ComfyUI's /workflow_templates: the workflows/ folder) and asks for each one's picture at
    api/workflow_templates/<pack>/<name>.jpg, which the server answers (200) with the shipped JPEG
    (scripts/build_thumbnails.py; its content is checked in tests/test_package.py)."""
    comfy, version, root = frontend
    stems = {p.stem for p in WORKFLOWS}
    listing = server.get("/workflow_templates")
    packs = [pack for pack, names in listing.items() if set(names) == stems]
    assert len(packs) == 1, listing
    expected = {f"/api/workflow_templates/{packs[0]}/{stem}.jpg" for stem in stems}
    requested = {}

    def seen(response):
        path = urlparse(response.url).path
        if path in expected:
            requested[path] = response.status

    page.on("response", seen)
    try:
        page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", EMPTY_WORKFLOW)
        page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        search = page.locator(TEMPLATE_SEARCH).first
        search.wait_for(state="visible", timeout=30_000)
        search.fill("m3ddm")
        for _ in range(60):
            if set(requested) >= expected:
                break
            page.wait_for_timeout(500)
        page.wait_for_timeout(1000)  # the pictures drawn
        page.screenshot(path=str(ARTIFACTS / f"templates_{comfy}_{version}.png"), timeout=120_000)
        fetched = {path: page.evaluate(THUMBNAIL_JS, path) for path in sorted(expected)}
    finally:
        page.remove_listener("response", seen)
        # Not every version closes the dialog on Escape (1.32.9 does not): start the page again instead.
        page.reload(wait_until="load", timeout=120_000)
        page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
    assert requested == {path: 200 for path in expected}, f"thumbnails the template browser asked for: {requested}"
    for path, got in fetched.items():
        local = REPO / "workflows" / Path(path).name
        assert got == {"status": 200, "type": "image/jpeg", "bytes": local.stat().st_size, "size": [320, 320]}, \
            (path, got)


# What the page changes before it queues a workflow: the test models the server has (tests/comfy_env.py) and
# plumbing settings (a 128 canvas, two steps, one guidance branch), set on the widgets as a user would; a seed of
# each ComfyUI + frontend pair's own, so that no pair's prompt is answered from the server's cache of another's.
TEST_MODELS = {"M3DDM_LoadModel": {"model_name": TEST_MODEL}, "VAELoader": {"vae_name": "taesd"},
               "UpscaleModelLoader": {"model_name": TEST_UPSCALER}}
PLUMBING = {"steps": 2, "seed": 7, "context_guidance": 1.0, "global_guidance": 1.0, "working_size": 128,
            "render": True}  # M3DDM Continue's review gate open: one Run renders (the gate has its own test)
def _plumbing(frontend) -> dict:
    import zlib
    return dict(PLUMBING, seed=zlib.crc32(f"{frontend[0]} {frontend[1]}".encode()) % 10_000)


SET_WIDGETS_JS = """([byType, anywhere]) => {
    const changed = [];
    for (const n of (window.app.graph.nodes ?? window.app.graph._nodes)) {
        const wanted = Object.assign({}, anywhere, byType[n.type] || {});
        for (const w of n.widgets || []) {
            if (w.name in wanted) { w.value = wanted[w.name]; changed.push(`${n.type}.${w.name}`); }
        }
    }
    window.app.graph.setDirtyCanvas(true, true);
    return changed;
}"""
# The demo clip: 33 frames of 208x120 landscape with audio, outpainted to 9:16 portrait (208x370); the short clip
# is its first 16 frames with no audio wired; M3DDM Compare puts source and result side by side (16 px apart).
EXPECTED_VIDEOS = {"m3ddm_short_clip_16x9_to_9x16": {"short_clip_9x16": (16, (208, 370), 0)},
                   "m3ddm_long_video_coarse_to_fine": {"outpaint_0": (33, (208, 370), 1),
                                                       "outpaint_comparison": (33, (2 * 208 + 16, 370), 1)},
                   "m3ddm_upscale_chain": {"outpaint_upscaled": (33, (208, 370), 1)},
                   "m3ddm_long_video_streaming": {"outpaint_streamed": (33, (208, 370), 1)},
                   "m3ddm_keyframes_preview_continue": {"outpaint_from_keyframes": (33, (208, 370), 1)}}


GRAPH_NODES_JS = "() => (window.app.graph.nodes ?? window.app.graph._nodes).length"


def _load_graph(page, workflow: dict) -> None:
    """Load ``workflow`` as a dropped file is loaded and wait until the page shows its nodes. Just after a page
    reload the frontend may still restore its last workflow over one loaded too early: then it is loaded again."""
    want = len(workflow["nodes"])
    for _ in range(3):
        page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
        page.wait_for_timeout(1000)
        if page.evaluate(GRAPH_NODES_JS) == want:
            page.wait_for_timeout(500)
            if page.evaluate(GRAPH_NODES_JS) == want:  # and nothing replaced it since
                return
    pytest.fail(f"the page shows {page.evaluate(GRAPH_NODES_JS)} nodes after loading a workflow of {want}")


def _videos(output: Path) -> set[Path]:
    return {p for p in output.rglob("*.mp4") if not p.name.startswith(".")}


def _drop_back(page, video: Path) -> list[str]:
    """Drop a saved video into the page, as a user drags it onto the canvas: the node types of the graph it
    loads (the workflow the video carries)."""
    import base64
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", EMPTY_WORKFLOW)
    page.evaluate("""async (b64) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        await window.app.handleFile(new File([bytes], 'dropped.mp4', {type: 'video/mp4'})); }""",
                  base64.b64encode(video.read_bytes()).decode())
    page.wait_for_timeout(1500)
    return page.evaluate("() => (window.app.graph.nodes ?? window.app.graph._nodes).map(n => n.type).sort()")


def _run_from_page(server, page, version: str) -> tuple[dict, list[Path]]:
    """Press Run (the frontend's Queue command) and wait for the prompt: ``(its history, the videos it wrote)``."""
    import time
    before, videos_before = set(server.get("/history")), _videos(server.output)
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.QueuePrompt')")
    t0, idle = time.time(), 0
    while time.time() - t0 < 900:
        # The queue is read before the history: a prompt that finishes between the two reads is then in the
        # history, never taken for one that was refused (read the other way round, it looked like neither).
        queue = server.get("/queue")
        new = {k: v for k, v in server.get("/history").items() if k not in before}
        done = [v for v in new.values() if v.get("status", {}).get("completed") is not None]
        if done:
            history = done[0]
            assert history["status"]["status_str"] == "success", json.dumps(history["status"])[:3000]
            return history, sorted(_videos(server.output) - videos_before)
        idle = idle + 1 if not new and not queue["queue_running"] and not queue["queue_pending"] else 0
        if idle >= 5 and time.time() - t0 > 10:  # nothing queued for 5 s in a row: refused, the page says why
            pytest.fail(f"nothing was queued from {version}: {page.evaluate(VISIBLE_BLOCKERS_JS)}\n"
                        f"{server.log()[-2000:]}")
        time.sleep(1)
    pytest.fail("the queued workflow did not finish in 900 s")


# workflow -> the prompt current ComfyUI's pinned frontend queued for it (:func:`_same_run`), from its run below
QUEUED: dict[str, dict] = {}


def _same_run(prompt: dict) -> dict:
    """What of a queued API prompt decides its run: each node's type and inputs, the seeds left out (every
    frontend samples with its own seed, so that no run is served from ComfyUI's cache)."""
    return {k: (v["class_type"], {n: x for n, x in v["inputs"].items() if n != "seed"}) for k, v in prompt.items()}


def _prompt_of_page(page) -> dict:
    """The API prompt Run would queue: the frontend's own ``graphToPrompt`` (what its queue command sends)."""
    return page.evaluate("async () => (await window.app.graphToPrompt()).output")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_queued_from_the_frontend_writes_its_videos(server, page, frontend, path):
    """What a user does: load the workflow, pick the models they have, press Run. The frontend converts the graph
    and queues it; every Save Video of the workflow writes its video (frames, size and audio as expected). The
    newest frontend runs on the same ComfyUI as the pinned one: the prompt it would queue is compared with the one
    the pinned frontend queued and ran (the same prompt on the same server is the same run), not run again (its
    Run button queues and runs in the review and Save Video tests)."""
    comfy, version, root = frontend
    assert set(EXPECTED_VIDEOS) == {p.stem for p in WORKFLOWS}, "add the new workflow's videos to EXPECTED_VIDEOS"
    workflow = json.loads(path.read_text())
    _load_graph(page, workflow)
    changed = page.evaluate(SET_WIDGETS_JS, [TEST_MODELS, _plumbing(frontend)])
    assert any(c.endswith(".model_name") for c in changed) and any(c.endswith(".steps") for c in changed), changed
    if comfy == "current" and root is not None and path.stem in QUEUED:
        ran = QUEUED[path.stem]
        assert any(kind.startswith("M3DDM_") for kind, _ in ran.values()), ran
        assert _same_run(_prompt_of_page(page)) == ran
        assert page.page_errors == [], page.page_errors
        return
    queued = []
    page.on("request", lambda r: queued.append(r.post_data_json["prompt"])
            if r.method == "POST" and r.url.endswith("/prompt") else None)
    history, written = _run_from_page(server, page, version)
    if comfy == "current" and root is None:
        QUEUED[path.stem] = _same_run(queued[-1])
    page.screenshot(path=str(ARTIFACTS / f"run_{comfy}_{version}_{path.stem}.png"), timeout=120_000)
    expected = EXPECTED_VIDEOS[path.stem]
    assert len(written) == len(expected), written
    import av
    for prefix, (frames, size, audio) in expected.items():
        match = [p for p in written if p.name.startswith(prefix)]
        assert len(match) == 1, (prefix, written)
        with av.open(str(match[0])) as c:
            stream = c.streams.video[0]
            got = (sum(1 for _ in c.decode(video=0)), (stream.codec_context.width, stream.codec_context.height),
                   len(c.streams.audio))
        assert got == (frames, size, audio), (match[0].name, got)
    assert page.page_errors == [], page.page_errors


SAVE_VIDEO_CHOICES_JS = """async ([codec, encoding, crf]) => {
    const n = (window.app.graph.nodes ?? window.app.graph._nodes).find(n => n.type === 'SaveVideo');
    const pick = async (name, value) => {
        const w = n.widgets.find(w => w.name === name);
        if (!w) throw new Error(`Save Video has no widget ${name}: ${n.widgets.map(w => w.name)}`);
        w.value = value; w.callback?.(value);
        await new Promise(r => setTimeout(r, 300));  // the chosen option's widgets appear
    };
    await pick('codec', codec); await pick('codec.encoding', encoding); await pick('codec.encoding.crf', crf);
    return n.widgets.map(w => [w.name, w.value]);
}"""


def test_save_video_options_chosen_in_the_frontend_reach_the_streamed_output(server, page, frontend):
    """Save Video's dynamic combo (current ComfyUI): H.264, re-encode, crf 30 chosen on its widgets after M3DDM
    Outpaint Video. The harness's converter reads the saved widget values as the frontend converts them, and the
    video the frontend queued was encoded with that crf (x264 records its settings in the stream)."""
    comfy, version, root = frontend
    if comfy == "floor":
        pytest.skip("ComfyUI 0.3.75's Save Video has no encoding options (a plain codec combo)")
    workflow = json.loads((REPO / "workflows" / "m3ddm_long_video_streaming.json").read_text())
    _load_graph(page, workflow)
    page.evaluate(SET_WIDGETS_JS, [TEST_MODELS, _plumbing(frontend)])
    widgets = page.evaluate(SAVE_VIDEO_CHOICES_JS, ["h264", "re-encode", 30])
    assert ["codec.encoding.crf", 30] in widgets, widgets
    converted = page.evaluate("async () => await window.app.graphToPrompt()")
    info = server.get("/object_info")
    ours = workflow_to_api(converted["workflow"], info)
    save = next(k for k, v in converted["output"].items() if v["class_type"] == "SaveVideo")
    assert ours[save]["inputs"] == converted["output"][save]["inputs"]
    assert converted["output"][save]["inputs"]["codec.encoding.crf"] == 30
    history, written = _run_from_page(server, page, version)
    assert len(written) == 1, written
    data = written[0].read_bytes()
    settings = data[data.index(b"x264 - core"):][:2000]
    assert b" crf=30.0 " in settings, settings[:400]
    # the streamed output carries the workflow: dropped back, it gives the graph
    assert _drop_back(page, written[0]) == sorted(n["type"] for n in workflow["nodes"])


def test_the_review_workflow_stops_after_the_key_frames_then_renders_the_rest(server, page, frontend):
    """Workflow (e) as its Note says: Run 1 samples and shows only the key frames and stops at M3DDM Continue (its
    'render' off, as shipped): no video. Switch 'render' on, Run again: only the rest is sampled (the preview is
    not run again) and Save Video writes the whole video."""
    comfy, version, root = frontend
    workflow = json.loads((REPO / "workflows" / "m3ddm_keyframes_preview_continue.json").read_text())
    cont = next(n for n in workflow["nodes"] if n["type"] == "M3DDM_Continue")
    assert cont["widgets_values"] == [False], "the shipped review gate is closed"
    _load_graph(page, workflow)
    gate = dict(_plumbing(frontend), strides="15,5,1")  # three levels on the 33-frame clip: key frames 0, 15, 30, 32
    del gate["render"]
    page.evaluate(SET_WIDGETS_JS, [TEST_MODELS, gate])
    log_start = len(server.log())
    history, written = _run_from_page(server, page, version)
    first = server.log()[log_start:]
    assert written == [], written  # stopped: nothing after Continue ran
    page.screenshot(path=str(ARTIFACTS / f"review_{comfy}_{version}_run1.png"), timeout=120_000)
    assert page.evaluate(VISIBLE_BLOCKERS_JS) == []  # and the page shows no error for it
    assert "[M3DDM_KeyframePreview] 4 key frames of 33 frames" in first, first[-3000:]
    assert "[M3DDM_Continue] stopped for review" in first
    shown = [f for out in history["outputs"].values() for f in out.get("images", [])]
    assert len(shown) == 4, shown  # the key frames in Preview Image (the quality plot did not run)
    changed = page.evaluate(SET_WIDGETS_JS, [{}, {"render": True}])  # the toggle on M3DDM Continue
    assert changed == ["M3DDM_Continue.render"], changed
    log_start = len(server.log())
    history, written = _run_from_page(server, page, version)
    second = server.log()[log_start:]
    assert "[M3DDM_KeyframePreview]" not in second  # not run again
    done = re.search(r"\[M3DDM_Continue\] sampled (\d+) of (\d+) passes \((\d+) resumed\)", second)
    assert done and int(done[3]) >= 1 and int(done[1]) == int(done[2]) - int(done[3]) >= 1, second[-3000:]
    assert len(written) == 1 and written[0].name.startswith("outpaint_from_keyframes"), written
    assert page.evaluate(VISIBLE_BLOCKERS_JS) == []
    assert _drop_back(page, written[0]) == sorted(n["type"] for n in workflow["nodes"])  # the video gives the graph


def test_a_typo_in_a_text_input_gets_one_message_and_runs_nothing(server, page, frontend):
    """A user types 9/16 for the aspect ratio and presses Run: the page reports it once (not once per input of
    the node), names the input, and nothing is queued."""
    comfy, version, root = frontend
    workflow = json.loads((REPO / "workflows" / "m3ddm_short_clip_16x9_to_9x16.json").read_text())
    _load_graph(page, workflow)
    changed = page.evaluate(SET_WIDGETS_JS, [dict(TEST_MODELS, M3DDM_OutpaintCanvas={"aspect_ratio": "9/16"}),
                                             _plumbing(frontend)])
    assert "M3DDM_OutpaintCanvas.aspect_ratio" in changed, changed
    before = set(server.get("/history"))
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.QueuePrompt')")
    page.wait_for_function(f"() => ({VISIBLE_BLOCKERS_JS})().some(b => b.includes('aspect_ratio'))", timeout=60_000)
    page.wait_for_timeout(1000)  # everything the page reports has arrived
    shown = page.evaluate(VISIBLE_BLOCKERS_JS)
    assert " ".join(shown).count("aspect_ratio") == 1, shown  # one report, naming the input
    details = page.get_by_text("View details")  # 1.58.1's toast opens its list of the rejected inputs
    if details.count():
        details.first.click()
        page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / f"typo_{comfy}_{version}.png"), timeout=120_000)
    text = page.evaluate("() => document.body.innerText")
    listed = re.findall(r"M3DDM Outpaint Canvas - (\w+)", text)
    if listed:  # 1.48 and later list each rejected input (the message is the entry's tooltip)
        assert listed == ["aspect_ratio"], text[-2000:]
    else:  # 1.32.9 shows the messages
        assert text.count("not of the form W:H") == 1, text[-2000:]
    queue = server.get("/queue")
    assert set(server.get("/history")) == before and not queue["queue_running"] and not queue["queue_pending"]
    # leave a clean page for the next test (not every version closes its error dialog on Escape)
    page.reload(wait_until="load", timeout=120_000)
    page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", EMPTY_WORKFLOW)
    page.wait_for_timeout(1500)


def test_an_error_while_running_shows_the_nodes_fix_on_the_page(server, page, frontend):
    """A user loads M3DDM+ weights (family m3ddm_plus on the loader) into the short-clip workflow after cutting the
    model's link to Encode Global Frames, and presses Run: the global frames are made with M3DDM's preprocessing,
    the model samples with M3DDM+'s. The run stops at Sample Clip, and the page shows the error with the node's
    fix (the core's GlobalFramesError, the node's hint added)."""
    comfy, version, root = frontend
    workflow = json.loads((REPO / "workflows" / "m3ddm_short_clip_16x9_to_9x16.json").read_text())
    encoder = next(n for n in workflow["nodes"] if n["type"] == "M3DDM_EncodeGlobalFrames")
    slot = next(i for i in encoder["inputs"] if i["name"] == "m3ddm_model")
    cut, slot["link"] = slot["link"], None
    workflow["links"] = [link for link in workflow["links"] if link[0] != cut]
    for node in workflow["nodes"]:
        for out in node.get("outputs", []):
            out["links"] = [k for k in out.get("links") or [] if k != cut]
    _load_graph(page, workflow)
    changed = page.evaluate(SET_WIDGETS_JS, [dict(TEST_MODELS, M3DDM_LoadModel=dict(
        TEST_MODELS["M3DDM_LoadModel"], family="m3ddm_plus")), _plumbing(frontend)])
    assert "M3DDM_LoadModel.family" in changed, changed
    before = set(server.get("/history"))
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.QueuePrompt')")
    page.wait_for_function(f"() => ({VISIBLE_BLOCKERS_JS})().length > 0", timeout=300_000)
    page.wait_for_timeout(1500)  # everything the page reports has arrived
    details = page.get_by_text("View details")  # 1.48 and later: a toast naming the node, the message behind it
    if details.count():
        details.first.click()
        page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / f"run_error_{comfy}_{version}.png"), timeout=120_000)
    text = page.evaluate("() => document.body.innerText")
    assert "encoded with m3ddm preprocessing, the model samples with m3ddm_plus" in text, text[-3000:]
    assert "M3DDM Encode Global Frames takes this node's canvas and model" in text, text[-3000:]
    ran = [v for k, v in server.get("/history").items() if k not in before]
    assert len(ran) == 1 and ran[0]["status"]["status_str"] == "error", ran
    page.reload(wait_until="load", timeout=120_000)  # a clean page for the next test
    page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", EMPTY_WORKFLOW)
    page.wait_for_timeout(1500)


def test_the_readme_from_the_main_command_to_the_ui(browser, tmp_path):
    """What the README tells a newcomer, in the UI the main command installed: scripts/open_ui.py (on a models
    folder with nothing in it yet, so it writes the demo's models, as the main command leaves them), the address it
    prints, Browse Templates -> ComfyUI-M3DDM -> workflow (e), m3ddm-random-DEMO and taesd picked, Run: the key
    frames only; 'render' on, Run: the video; the video dropped back gives the graph; a typo in it gets one message.
    (Plumbing settings -- a 128 canvas, two steps, one guidance branch -- keep it short.)"""
    import subprocess
    import time

    from comfy_harness import ComfyServer
    port, work = free_port(), tmp_path / "ui"
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "open_ui.py"), "--port", str(port), "--cpu",
                             "--models", str(tmp_path / "models"), "--workdir", str(work)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, M3DDM_COMFYUI_DIR=str(COMFY_DIR)))
    ui = ComfyServer(sys.executable, COMFY_DIR, work, port=port)  # its HTTP API and folders
    ctx = None
    try:
        said, t0 = [], time.time()
        while not any("ComfyUI is at" in line for line in said):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(said) + ui.log()[-3000:]
            said.append(line)
            assert time.time() - t0 < 300, "".join(said)
        assert f"http://127.0.0.1:{port}" in said[-1] and "m3ddm-random-DEMO" in said[-1], said
        ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = ctx.new_page()
        page.goto(ui.base, wait_until="load", timeout=120_000)
        page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
        version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__")
        search = page.locator(TEMPLATE_SEARCH).first
        if not search.is_visible():  # the first visit opens the template browser by itself
            page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        search.wait_for(state="visible", timeout=30_000)
        page.get_by_text("ComfyUI-M3DDM", exact=True).first.click()  # the pack's templates, under Extensions
        page.get_by_text("m3ddm_keyframes_preview_continue", exact=True).first.click()
        page.wait_for_function("() => (window.app.graph.nodes ?? window.app.graph._nodes)"
                               ".some(n => n.type === 'M3DDM_KeyframePreview')", timeout=30_000)
        page.wait_for_timeout(1000)
        models = {"M3DDM_LoadModel": {"model_name": "m3ddm-random-DEMO"}, "VAELoader": {"vae_name": "taesd"}}
        plumbing = dict(PLUMBING, strides="15,5,1")
        del plumbing["render"]  # as shipped: the review gate closed
        page.evaluate(SET_WIDGETS_JS, [models, plumbing])
        history, written = _run_from_page(ui, page, version)
        assert written == [] and "[M3DDM_Continue] stopped for review" in ui.log(), ui.log()[-3000:]
        assert len([f for out in history["outputs"].values() for f in out.get("images", [])]) == 4  # key frames
        assert page.evaluate(SET_WIDGETS_JS, [{}, {"render": True}]) == ["M3DDM_Continue.render"]
        history, written = _run_from_page(ui, page, version)
        assert len(written) == 1 and written[0].name.startswith("outpaint_from_keyframes"), written
        page.screenshot(path=str(ARTIFACTS / f"readme_{version}_rendered.png"), timeout=120_000)
        graph = _drop_back(page, written[0])
        assert "M3DDM_KeyframePreview" in graph and "M3DDM_Continue" in graph, graph
        page.evaluate(SET_WIDGETS_JS, [{"M3DDM_OutpaintCanvas": {"aspect_ratio": "9/16"}}, {}])
        before = set(ui.get("/history"))
        page.evaluate("() => window.app.extensionManager.command.execute('Comfy.QueuePrompt')")
        page.wait_for_function(f"() => ({VISIBLE_BLOCKERS_JS})().some(b => b.includes('aspect_ratio'))",
                               timeout=60_000)
        page.wait_for_timeout(1000)
        shown = page.evaluate(VISIBLE_BLOCKERS_JS)
        assert " ".join(shown).count("aspect_ratio") == 1 and set(ui.get("/history")) == before, shown
        page.screenshot(path=str(ARTIFACTS / f"readme_{version}_typo.png"), timeout=120_000)
    finally:
        if ctx is not None:
            ctx.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        ui.proc = None
        _keep_log(ui, "comfyui_readme_ui_server.log")
