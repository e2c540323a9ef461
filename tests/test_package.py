"""The registry package: the archive `comfy node pack` / `comfy node publish` would upload, the registry's scanner
rules on it, and the pyproject.toml fields the registry reads. Fast; needs git, ruff and pathspec, not ComfyUI.

Sources: Comfy-Org/docs registry/specifications.mdx, registry/publishing.mdx and registry/standards.mdx;
Comfy-Org/comfy-cli comfy_cli/file_utils.py (zip_files), comfy_cli/registry/config_parser.py (classifiers) and
comfy_cli/command/custom_nodes/command.py (the ruff rules of `comfy node validate/publish`).
"""
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
COMFY = PYPROJECT["tool"]["comfy"]

OS_CLASSIFIER = "Operating System :: OS Independent"
ACCELERATORS = {"Environment :: GPU :: NVIDIA CUDA", "Environment :: GPU :: Apple Metal"}
# comfy-cli's validate_and_extract_accelerator_classifiers: one "Environment ::" classifier outside this set and
# no accelerator is published at all. There is no CPU classifier.
REGISTRY_ACCELERATORS = {"Environment :: GPU :: NVIDIA CUDA", "Environment :: GPU :: AMD ROCm",
                         "Environment :: GPU :: Intel Arc", "Environment :: NPU :: Huawei Ascend",
                         "Environment :: GPU :: Apple Metal"}
REGISTRY_OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
# sha256 of the Apache License 2.0 terms (from its title to "END OF TERMS AND CONDITIONS"), whitespace collapsed:
# the same for apache.org's LICENSE-2.0.txt and any reflowed copy; the appendix (a template) is not compared.
APACHE_2_TERMS_SHA256 = "59d8f0ba87ad9a2f1a431123c8d16646e5b89ba53653e818f16d136d77263c99"


def _fail_in_ci_else_skip(msg: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        _fail_in_ci_else_skip(f"{module} is not installed; pip install -r requirements-dev.txt")


def _git_files() -> list[str]:
    """Tracked files plus untracked files that .gitignore does not ignore, so files not yet added count too."""
    if not (REPO / ".git").exists():
        _fail_in_ci_else_skip(f"{REPO} is not a git checkout; the registry archive is built from git's file list")
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout.decode()
    # comfy-cli skips listed files that are gone from disk (e.g. deleted but not yet committed)
    return sorted({p for p in out.split("\0") if p and (REPO / p).is_file()})


@pytest.fixture(scope="module")
def archive() -> list[str]:
    """The archive's file list, built as comfy-cli's zip_files does: git's files minus the .comfyignore patterns
    (stripped, non-empty, non-comment lines, matched with pathspec's "gitwildmatch")."""
    _require("pathspec")
    import pathspec
    files = _git_files()
    ignore = REPO / ".comfyignore"
    assert ignore.is_file(), "no .comfyignore: tests/, scripts/, benchmarks/ would be published"
    patterns = [ln.strip() for ln in ignore.read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    with warnings.catch_warnings():  # pathspec >= 1.0 deprecates the name comfy-cli uses
        warnings.simplefilter("ignore", DeprecationWarning)
        spec = pathspec.PathSpec.from_lines("gitwildmatch", patterns)
    return [f for f in files if not spec.match_file(f)]


def test_the_archive_leaves_development_files_out(archive):
    for prefix in ("tests/", "benchmarks/", "scripts/", ".ci/"):
        assert not [f for f in archive if f.startswith(prefix)], prefix
    for name in ("requirements-dev.txt", ".gitignore"):
        assert name not in archive
    assert not [f for f in archive if f.startswith((".venv/", ".comfyui/")) or "__pycache__" in f]


def test_the_archive_has_what_comfyui_loads(archive):
    files = set(archive)
    for name in ("__init__.py", "LICENSE", "pyproject.toml", "requirements.txt", "README.md"):
        assert name in files, name
    for folder, pattern in (("nodes", "*.py"), ("m3ddm_core", "**/*.py"), ("workflows", "*.json"),
                            ("web/docs", "*.md")):
        on_disk = {p.relative_to(REPO).as_posix() for p in (REPO / folder).glob(pattern)}
        assert on_disk, f"{folder}/{pattern}: nothing on disk"
        assert on_disk <= files, f"missing from the archive: {sorted(on_disk - files)}"
    # the workflows' Load Video node refers to the demo clip
    assert "workflows/media/m3ddm_demo_clip.mp4" in files
    # and each workflow's template thumbnail (the picture Browse Templates shows) ships beside it
    thumbnails = {p.with_suffix(".jpg").relative_to(REPO).as_posix() for p in (REPO / "workflows").glob("*.json")}
    assert thumbnails <= files, f"missing from the archive: {sorted(thumbnails - files)}"


def _thumbnails_script():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import build_thumbnails
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return build_thumbnails


@pytest.mark.parametrize("workflow", sorted((REPO / "workflows").glob("*.json")), ids=lambda p: p.stem)
def test_each_workflow_has_a_before_after_thumbnail_of_the_demo_clip(workflow):
    """The template browser asks for workflows/<name>.jpg (the frontend's thumbnail URL for a custom node's
    template; tests/test_frontend.py fetches it through the server). It is a small JPEG of the script's size whose
    "before" picture is the clip's frame and whose "after" picture is the frame on the workflow's output canvas
    (9:16: taller than wide) with a filled border, not a placeholder; and it is what scripts/build_thumbnails.py
    makes of the workflow now (rerun the script after changing a workflow's target)."""
    import json
    import cv2
    import numpy as np
    thumbs = _thumbnails_script()
    path = workflow.with_suffix(".jpg")
    assert path.is_file(), f"no thumbnail {path.name}: python scripts/build_thumbnails.py"
    assert path.stat().st_size < 60 * 1024
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == thumbs.SIZE, (im.format, im.size)
        image = np.asarray(im.convert("RGB")).astype(np.float32)
    frame = thumbs.read_frame()
    spec = thumbs.target(json.loads(workflow.read_text()))
    after = thumbs.outpaint_prefill(frame, spec)
    (bx, by, bw, bh), (ax, ay, aw, ah) = thumbs.boxes(frame.shape[:2], after.shape[:2])
    before = image[by:by + bh, bx:bx + bw]
    expected = cv2.resize(frame, (bw, bh), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(before - expected).mean() < 4, "the 'before' picture is not the clip's frame"
    # not a gradient or a flat fill: the frame's detail (a smooth ramp would leave most of this unexplained)
    assert before.std() > 30 and np.abs(before - before.mean(axis=(0, 1))).mean() > 20
    shown = image[ay:ay + ah, ax:ax + aw]
    assert (aw, ah) != (bw, bh)
    if spec.get("ratio") == "9:16":
        assert ah > aw, "the 'after' picture is not portrait"
    # the border (above and below the frame's band) is filled with the frame's colours, not left black
    border = shown[: ah // 6]
    assert border.mean() > 25 and border.std() > 5
    assert np.abs(image - thumbs.thumbnail(json.loads(workflow.read_text()), frame).astype(np.float32)).mean() < 3, \
        "the thumbnail is out of date: python scripts/build_thumbnails.py"


def _ruff(select: str, files: list[str]) -> None:
    _require("ruff")
    assert files
    # --isolated: no [tool.ruff] config can narrow the check; --ignore-noqa: the registry's rules are not optional
    cmd = [sys.executable, "-m", "ruff", "check", "--isolated", "--ignore-noqa", "--no-cache",
           "--output-format", "concise", "--select", select, *files]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, f"ruff --select {select} (exit {r.returncode}):\n{r.stdout}{r.stderr}"


def test_registry_security_rules_on_every_published_python_file(archive):
    """What `comfy node publish` checks (it only warns today, "this will be an error soon"): exec (S102),
    eval (S307), several statements on one line (E702)."""
    _ruff("S102,S307,E702", [f for f in archive if f.endswith(".py")])


def test_no_subprocess_or_url_opening_in_the_node_code(archive):
    """The node code ships no subprocess call with non-literal arguments (S603; the registry forbids runtime pip
    installs) and no urllib URL opening (S310)."""
    _ruff("S603,S310", [f for f in archive if f.endswith(".py") and f.startswith(("nodes/", "m3ddm_core/"))])


def test_project_name_follows_the_registry_rules():
    name = PROJECT["name"]
    assert len(name) < 100
    # letters, digits, "-", "_", "."; no leading digit or special character; no consecutive special characters
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", name), name
    assert "comfyui" not in name.lower(), "the registry asks not to include 'ComfyUI' in the name"
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"]), PROJECT["version"]
    assert COMFY["PublisherId"] and COMFY["DisplayName"] and COMFY["requires-comfyui"]


def test_icon_url_points_at_a_square_png_in_this_repo(archive):
    repo_url = urlparse(PROJECT["urls"]["Repository"])
    owner_repo = repo_url.path.strip("/")
    icon = urlparse(COMFY["Icon"])
    assert icon.scheme == "https" and icon.netloc == "raw.githubusercontent.com", COMFY["Icon"]
    prefix = f"/{owner_repo}/main/"
    assert icon.path.startswith(prefix), f"{COMFY['Icon']} is not a file of {owner_repo} on main"
    path = icon.path[len(prefix):]
    assert path in archive, f"{path} is not a (git-tracked or new) file that ships"
    with Image.open(REPO / path) as im:
        assert im.format == "PNG"
        w, h = im.size
    assert w == h <= 400, (w, h)
    assert (REPO / path).stat().st_size < 64 * 1024


def test_classifiers_name_the_os_and_the_accelerators():
    classifiers = PROJECT["classifiers"]
    assert OS_CLASSIFIER in classifiers
    assert ACCELERATORS <= set(classifiers)
    environment = [c for c in classifiers if c.startswith("Environment ::")]
    assert set(environment) <= REGISTRY_ACCELERATORS, environment
    for c in classifiers:
        if c.startswith("Operating System :: "):
            assert c[len("Operating System :: "):].startswith(REGISTRY_OS_PREFIXES), c


def test_project_urls():
    urls = PROJECT["urls"]
    repo = urls["Repository"]
    assert repo == "https://github.com/comfyui-m3ddm/ComfyUI-M3DDM"
    # comfy-cli reads exactly these keys (Homepage, Documentation, Repository, Issues)
    assert urls["Documentation"].startswith(repo)
    assert urls["Issues"] == f"{repo}/issues"


def test_license_is_the_apache_2_text_it_declares(archive):
    assert PROJECT["license"] == {"file": "LICENSE"}
    assert "LICENSE" in archive
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    start = text.index("Apache License")
    end = text.index("END OF TERMS AND CONDITIONS") + len("END OF TERMS AND CONDITIONS")
    assert "Version 2.0, January 2004" in text
    terms = " ".join(text[start:end].split())
    assert hashlib.sha256(terms.encode()).hexdigest() == APACHE_2_TERMS_SHA256, "not the verbatim Apache-2.0 terms"
    # a license classifier, if one is added, must agree
    for c in PROJECT.get("classifiers", []):
        if c.startswith("License ::"):
            assert c == "License :: OSI Approved :: Apache Software License", c


def test_the_registry_dependencies_equal_requirements_txt():
    """comfy-cli sends only a literal [project].dependencies to the registry, ComfyUI-Manager installs
    requirements.txt: both lists must be the same, and neither may name torch (ComfyUI provides it)."""
    from packaging.requirements import Requirement
    assert "dependencies" not in PROJECT.get("dynamic", []), "a dynamic list reaches the registry as []"
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    required = sorted(str(Requirement(ln)) for ln in lines if ln)
    assert sorted(str(Requirement(d)) for d in PROJECT["dependencies"]) == required
    names = {Requirement(d).name.lower() for d in PROJECT["dependencies"]}
    assert names and not names & {"torch", "torchvision", "torchaudio"}, "ComfyUI provides torch"


def test_the_ray_extra_is_what_the_project_set_up_installs():
    """``pip install ".[ray]"`` and scripts/setup_env.sh (requirements-dev.txt) install the same Ray, and the extra
    pulls no torch; the package it builds is the pure-torch core only (no ComfyUI layer)."""
    from packaging.requirements import Requirement
    extra = [Requirement(r) for r in PROJECT["optional-dependencies"]["ray"]]
    dev = [Requirement(ln.split("#")[0].strip()) for ln in (REPO / "requirements-dev.txt").read_text().splitlines()
           if ln.split("#")[0].strip()]
    assert [str(r) for r in extra] == [str(r) for r in dev if r.name == "ray"] and extra
    assert not {r.name for r in extra} & {"torch", "torchvision"}
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    # the core and every layer of it, nothing else (the ComfyUI layer is loaded from custom_nodes)
    layers = ["model", "pipeline", "media", "analysis", "apps"]  # tests/test_layers.py's ORDER
    assert packages == ["m3ddm_core", *(f"m3ddm_core.{p.parent.name}" for p in sorted(
        (REPO / "m3ddm_core").glob("*/__init__.py"), key=lambda p: layers.index(p.parent.name)))]
