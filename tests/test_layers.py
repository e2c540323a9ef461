"""The core's layout shows its architecture: ``model`` (the UNet and its weights) < ``pipeline`` (canvas, plan,
encode, sample, composite, resume, memory, shots) < ``media`` (video files, streaming) < ``analysis`` (quality
check, evaluation, comparison) < ``apps`` (batch, Ray, weight conversion). A module imports only from its own layer
or a lower one, no module imports another in a circle, and the top level holds only the public exports and the two
command entry points. The ComfyUI layer ``nodes/`` never uses ``apps``: no core name a node imports (through the
exports or directly) is defined there."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "m3ddm_core"
NODES = CORE.parent / "nodes"
ORDER = ["model", "pipeline", "media", "analysis", "apps"]
TOP_LEVEL = {"__init__", "batch", "convert_weights"}  # exports, ``python -m m3ddm_core.batch`` / ``.convert_weights``


def core_imports() -> dict[str, set[str]]:
    """``{module: {core modules it imports}}``, modules named by their path in the package (``pipeline.canvas``;
    a package by its ``__init__``), lazy imports inside functions included."""
    graph: dict[str, set[str]] = {}
    for path in sorted(CORE.rglob("*.py")):
        parts = list(path.relative_to(CORE).with_suffix("").parts)
        package = parts[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - (node.level - 1)]
                targets = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("m3ddm_core."):
                targets = [node.module.split(".")[1:]]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1:] for a in node.names if a.name.startswith("m3ddm_core.")]
            else:
                continue
            for t in targets:
                name = ".".join(t)
                if (CORE / f"{'/'.join(t)}.py").is_file():
                    deps.add(name)
                elif (CORE / "/".join(t) / "__init__.py").is_file():
                    deps.add(f"{name}.__init__" if name else "__init__")
        graph[".".join(parts)] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` as the modules on it (empty when there is none)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []
    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def layer(module: str) -> str | None:
    head = module.split(".")[0]
    return head if head in ORDER else None


def test_every_module_is_in_a_layer():
    stray = [m for m in core_imports() if layer(m) is None and m not in TOP_LEVEL]
    assert not stray, f"modules outside the layers: {stray}"
    assert all((CORE / name / "__init__.py").is_file() for name in ORDER)


def test_each_layer_imports_only_its_own_or_lower_layers():
    graph = core_imports()
    upward = [(m, d) for m, deps in graph.items() for d in deps
              if layer(m) and layer(d) and ORDER.index(layer(d)) > ORDER.index(layer(m))]
    assert not upward, f"imports from a higher layer: {upward}"
    model_deps = {d for m, deps in graph.items() if layer(m) == "model" for d in deps}
    assert all(layer(d) == "model" for d in model_deps), model_deps  # the model imports nothing else
    # only the entry points and the exports reach into the layers from the top level
    assert not [(m, d) for m, deps in graph.items() if layer(m) for d in deps if d in TOP_LEVEL]


def test_no_module_imports_another_in_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]  # the finder finds
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
    graph = core_imports()
    assert len(graph) > 25 and graph["pipeline.executors"]  # the scan sees the package
    assert find_cycle(graph) == []


def facade_sources() -> dict[str, str]:
    """``{exported name: core module that defines it}`` (``analysis.quality``), from the facade's own
    ``from .layer.module import name`` statements."""
    sources: dict[str, str] = {}
    for node in ast.parse((CORE / "__init__.py").read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            sources.update({a.asname or a.name: node.module for a in node.names})
    return sources


def core_names(source: str) -> list[tuple[str, str | None]]:
    """``(name, core module it comes from)`` for each core name a ``nodes/`` file imports, lazy imports included:
    ``from ..m3ddm_core import a`` (resolved through the facade; ``None`` when the facade does not say where ``a``
    comes from), ``from ..m3ddm_core.x.y import b`` (``x.y``), ``import m3ddm_core.x.y`` (``x.y``)."""
    sources = facade_sources()
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level in (0, 2) and node.module:
            head, _, rest = node.module.partition(".")
            if head != "m3ddm_core":
                continue
            for a in node.names:
                if rest:
                    found.append((a.name, rest))
                elif a.name in sources:
                    found.append((a.name, sources[a.name]))
                elif (CORE / a.name).is_dir() or (CORE / f"{a.name}.py").is_file():
                    found.append((a.name, a.name))  # a core module or layer itself
                else:
                    found.append((a.name, None))
        elif isinstance(node, ast.ImportFrom) and node.level == 2 and node.module is None:
            found += [(a.name, "__init__") for a in node.names if a.name == "m3ddm_core"]
        elif isinstance(node, ast.Import):
            found += [(a.name, a.name.partition(".")[2] or "__init__") for a in node.names
                      if a.name.split(".")[0] == "m3ddm_core"]
    return found


def test_the_nodes_never_use_apps():
    # the finder finds an apps name however it is imported
    assert ("JobSpec", "apps.jobs") in core_names("from ..m3ddm_core.apps.jobs import JobSpec")
    assert core_names("def f():\n    from ..m3ddm_core.apps import jobs\n") == [("jobs", "apps")]
    assert core_names("import m3ddm_core.apps.scaleout") == [("m3ddm_core.apps.scaleout", "apps.scaleout")]
    assert core_names("from ..m3ddm_core import check_quality, compare_frames") == [
        ("check_quality", "analysis.quality"), ("compare_frames", "analysis.compare")]
    assert core_names("from .inputs import CanvasPlan\nfrom ..m3ddm_core import apps") == [("apps", "apps")]
    uses = {path.relative_to(CORE.parent).as_posix(): core_names(path.read_text())
            for path in sorted(NODES.rglob("*.py"))}
    assert ("schedule_windows", "analysis.quality") in uses["nodes/measure_nodes.py"]  # the scan sees the nodes
    assert {m for found in uses.values() for _, m in found} >= {"analysis.quality", "analysis.evaluate",
                                                                "analysis.compare"}
    unresolved = [f"{node}: {name}" for node, found in uses.items() for name, module in found if module is None]
    assert not unresolved, f"core names the facade does not import from a layer module: {unresolved}"
    apps = [f"{node} imports {name} from m3ddm_core.{module}" for node, found in uses.items()
            for name, module in found if layer(module) == "apps"]
    assert not apps, f"nodes use the apps layer: {apps}"


# What a front-end's orchestration is made of: planning, encoding, running and storing passes, the memory decision,
# reading files. The core's entry (pipeline/outpaint.py, media/outpainted.py) composes them; a node that imports one
# is writing its own pipeline again.
ORCHESTRATION = {"plan_video", "plan_passes", "encode_video", "run_plan", "run_passes", "run_pass", "run_pass_batch",
                 "prepare_shot", "decode_latents", "PassStore", "stores_in", "resume_key", "run_key", "PlanRun", "choose_branching",
                 "reserve_for_sampling", "default_max_passes", "sampling_memory", "probe", "read_frames",
                 "check_range", "write_outpainted", "composite_frames", "CutDetector"}


def test_the_nodes_call_the_core_entry_not_its_parts():
    uses = {path.relative_to(CORE.parent).as_posix(): core_names(path.read_text())
            for path in sorted(NODES.rglob("*.py"))}
    assert ("sample", "pipeline.outpaint") in uses["nodes/sampler_nodes.py"]
    parts = [f"{node} imports {name}" for node, found in uses.items() for name, _ in found if name in ORCHESTRATION]
    assert not parts, f"nodes orchestrate the pipeline themselves: {parts}"
    assert core_names("from ..m3ddm_core import run_plan, prepare")[0][0] in ORCHESTRATION  # the check can fail


def test_the_shipped_core_holds_no_test_oracle():
    assert not list(CORE.rglob("reference.py"))
    assert (CORE.parent / "tests" / "reference.py").is_file()
