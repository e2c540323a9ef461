"""Integration: each example workflow loads in the real ComfyUI frontend (comfyui-frontend-package) in headless
Chromium -- no missing node types, no dialog, toast or issue report -- and the frontend's own UI->API conversion
matches the one the demo and the server tests use. Screenshots are kept as test artifacts.

Every test runs against two frontends over the session's one ComfyUI 0.3.75 server (the conftest fixture
comfy_server): the one ComfyUI pins and the venv has (1.32.9), served by the server itself, and the newest release
(NEWEST_FRONTEND in scripts/setup_env.sh), unpacked by scripts/install_frontend.sh to .frontends/VERSION and served
by tests/frontend_proxy.py in front of the same server, as ComfyUI's --front-end-root would serve it.
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

from comfy_env import REPO

sys.path.insert(0, str(REPO / "scripts"))
from comfy_harness import free_port, workflow_to_api  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
ARTIFACTS = Path(os.environ.get("M3DDM_TEST_ARTIFACTS", REPO / "test-artifacts"))
FRONTENDS_DIR = Path(os.environ.get("M3DDM_FRONTENDS_DIR", REPO / ".frontends"))

# Anything of these that is visible after loading a workflow is a report to the user. 1.32.9 draws dialogs with
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
# Differences of the newer frontend with this backend, none of them in what the tests check:
# - it lists the queue and history through the Jobs API (GET /api/jobs), which ComfyUI 0.3.75 does not have (it
#   has /queue and /history only), so its queue/job panel stays empty;
# - its template browser (opened by test_the_blocker_check_sees_dialogs_and_toasts) asks for
#   /templates/index_logo.json, which the comfyui-workflow-templates 0.7.25 that ComfyUI 0.3.75 pins lacks (it
#   shows the templates without provider logos).
NEWER_FRONTEND_HTTP_ERRORS = {
    "/api/jobs": "Jobs API, added to the ComfyUI backend after 0.3.75",
    "/templates/index_logo.json": "template logos index, not in comfyui-workflow-templates 0.7.25",
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


def _bundled_version() -> str:
    try:
        return importlib.metadata.version("comfyui-frontend-package")
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"


def _newest_version() -> str:
    if os.environ.get("M3DDM_NEWEST_FRONTEND"):
        return os.environ["M3DDM_NEWEST_FRONTEND"]
    m = re.search(r"^NEWEST_FRONTEND=(\S+)", (REPO / "scripts" / "setup_env.sh").read_text(), re.M)
    assert m, "scripts/setup_env.sh does not set NEWEST_FRONTEND"
    return m.group(1)


def _frontends() -> list:
    bundled, newest = _bundled_version(), _newest_version()
    out = [pytest.param((bundled, None), id=f"frontend-{bundled}")]
    if newest != bundled:
        out.append(pytest.param((newest, FRONTENDS_DIR / newest), id=f"frontend-{newest}"))
    return out


@pytest.fixture(scope="module", params=_frontends())
def frontend(request):
    """(version, web root or None for the venv's comfyui-frontend-package)."""
    version, root = request.param
    if root is not None:
        _require((root / "index.html").is_file(),
                 f"comfyui-frontend-package {version} is not unpacked at {root}; run "
                 f"bash scripts/install_frontend.sh {version} {root} (bash scripts/setup_env.sh does)")
    return version, root


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
def server(frontend, comfy_server):
    """The session's ComfyUI server; a frontend other than the one it serves is put in front of it by a
    FrontendProxy (its web root answered locally, everything else by the server)."""
    version, root = frontend
    # A first-visit user for each frontend: no settings left by another frontend or test.
    for settings in (comfy_server.user_directory / "default").glob("comfy.settings.json"):
        settings.unlink()
    if root is None:
        yield comfy_server
        return
    from frontend_proxy import FrontendProxy
    proxy = FrontendProxy(comfy_server.base, _server_web_root(comfy_server), root, free_port()).start()
    proxy.get, proxy.post, proxy.log = comfy_server.get, comfy_server.post, comfy_server.log
    yield proxy
    proxy.stop()


def _server_web_root(server) -> Path:
    return Path(re.search(r"\[Prompt Server\] web root: (.+)", server.log()).group(1).strip())


@pytest.fixture(scope="module")
def page(server, frontend, browser):
    version, root = frontend
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


def test_the_expected_frontend_is_served(server, page, frontend):
    version, root = frontend
    assert page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__") == version
    assert server.get("/system_stats")["system"]["comfyui_version"] == "0.3.75"
    web_root = server.web_root if root is not None else _server_web_root(server)
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
    version, root = frontend
    workflow = json.loads(path.read_text())
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
    page.wait_for_timeout(1500)
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
    allowed = EXPECTED_HTTP_ERRORS | (NEWER_FRONTEND_HTTP_ERRORS if root is not None else {})
    unexpected = [e for e in page.http_errors if urlparse(e.split(" ", 1)[1]).path not in allowed]
    assert unexpected == [], f"requests the ComfyUI 0.3.75 server failed: {unexpected}"
