"""The package's layers, checked on its source: which modules may import which.

Every import statement counts, at module level or inside a function (a deferred import is still a dependency),
and so does every package ``__init__`` on the way to an imported module. Layers, inner to outer:

- models: ``detectors/models/`` (architectures and their specs); imports nothing else of ours.
- core: the inference path and what it reads (see :data:`CORE`); never gradio, plotly, training, bench, the app or
  the command line, directly or through another module.
- app: the page's handlers and views (``service``, ``views``, ``examples``, ``app.py``); of training, only the
  self-blending recipe (the examples gallery's fake).
- cli: the command line and its engines (``cli``, ``evaluation``, ``archive``, ``__main__``).
- training: ``detectors/training/``: the core and the models, never the app, the command line or the tools.
- tools: ``bench``: anything but the command line.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "detectors"

CORE = {
    "detectors", "detectors._torchvision_compat", "detectors.about", "detectors.calibration", "detectors.checkpoints",
    "detectors.credentials", "detectors.explain", "detectors.face_search", "detectors.faces", "detectors.fast_path",
    "detectors.machine", "detectors.media", "detectors.metadata", "detectors.metrics", "detectors.pipeline",
    "detectors.preprocess", "detectors.provenance", "detectors.records", "detectors.registry", "detectors.robustness",
    "detectors.spectrum",
}
APP = {"detectors.service", "detectors.views", "detectors.examples", "app"}
CLI = {"detectors.cli", "detectors.__main__", "detectors.evaluation", "detectors.archive"}
TOOLS = {"detectors.bench"}
DISPLAY_LIBRARIES = {"gradio", "gradio_client", "plotly"}
# The one piece of training the app uses: the examples gallery shows a self-blended fake made by the training recipe.
APP_MAY_USE = {"detectors.training", "detectors.training.sbi"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> dict[str, Path]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    files["app"] = ROOT / "app.py"
    return files


def layer(name: str) -> str:
    if name == "detectors.models" or name.startswith("detectors.models."):
        return "models"
    if name == "detectors.training" or name.startswith("detectors.training."):
        return "training"
    for layer_name, members in (("core", CORE), ("app", APP), ("cli", CLI), ("tools", TOOLS)):
        if name in members:
            return layer_name
    raise AssertionError(f"{name} belongs to no layer: add it to one in tests/test_layers.py (and the README's map)")


def imported_names(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules ``name``'s source imports: ours by full name, others by their top-level package name."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            # ``from . import explain`` imports the module ``detectors.explain``, not a name of the package
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known)
    found.discard(name)  # ``from . import x`` in a package's __init__ names the package itself
    ours = {n for n in found if n.split(".")[0] == "detectors"}
    return {n for n in ours if n in known} | {n.split(".")[0] for n in found - ours}


def import_graph() -> dict[str, set[str]]:
    files = source_files()
    return {name: imported_names(name, path, set(files)) for name, path in files.items()}


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Everything importing ``start`` runs (package ``__init__``s on the way included, but for the root package's,
    which every module runs and which is checked as a core module of its own): module -> who imports it."""
    seen: dict[str, str] = {}
    stack = [start]
    while stack:
        current = stack.pop()
        parents = [".".join(current.split(".")[:i]) for i in range(2, current.count(".") + 1)]
        for target in [*graph.get(current, ()), *parents]:
            if target not in seen and target != start:
                seen[target] = current
                stack.append(target)
    return seen


def path_to(seen: dict[str, str], start: str, target: str) -> str:
    chain = [target]
    while chain[-1] != start:
        chain.append(seen[chain[-1]])
    return " -> ".join(reversed(chain))


FORBIDDEN = {
    "models": lambda n: layer_of(n) not in ("models", "external") or n in DISPLAY_LIBRARIES,
    "core": lambda n: layer_of(n) in ("app", "cli", "training", "tools") or n in DISPLAY_LIBRARIES,
    "training": lambda n: layer_of(n) in ("app", "cli", "tools") or n in DISPLAY_LIBRARIES,
    "app": lambda n: layer_of(n) in ("cli", "tools") or (layer_of(n) == "training" and n not in APP_MAY_USE),
    "tools": lambda n: layer_of(n) == "cli",
    "cli": lambda n: False,
}


def layer_of(name: str) -> str:
    if name == "detectors":
        return "core-root"  # the package itself: every module's import runs it
    if name.split(".")[0] not in ("detectors", "app"):
        return "external"
    return layer(name)


def test_every_module_belongs_to_a_layer_and_the_readme_map_names_it():
    readme = (ROOT / "README.md").read_text()
    code_map = readme[readme.index("## Map of the code"):]
    code_map = code_map[: code_map.index("\n## ", 1)]
    for name in source_files():
        layer(name)
        if name.count(".") == 1 and not name.startswith("detectors.models") and not name.startswith("detectors.training"):
            assert f"`{name.split('.')[-1]}`" in code_map, f"the README's map of the code does not name {name}"


@pytest.mark.parametrize("name", sorted(source_files()))
def test_no_module_reaches_a_layer_it_must_not_depend_on(name):
    graph = import_graph()
    seen = reachable(graph, name)
    rule = FORBIDDEN[layer(name)]
    wrong = [path_to(seen, name, target) for target in sorted(seen) if rule(target)]
    assert not wrong, f"{name} ({layer(name)}) must not depend on:\n" + "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among our modules (explicit imports only), or None."""
    ours = {name: {t for t in targets if t in graph} for name, targets in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(ours[node]):
            if state.get(target) == 1:
                return trail[trail.index(target):] + [target]
            if target not in state:
                found = visit(target, trail + [target])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(ours):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_cycle_among_our_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_see_a_wrong_way_import_and_a_cycle():
    """The rules above can fail: a core module that imports the page's views, and two modules importing each other."""
    graph = import_graph()
    graph["detectors.calibration"] = graph["detectors.calibration"] | {"detectors.views"}
    seen = reachable(graph, "detectors.calibration")
    assert any(FORBIDDEN["core"](target) for target in seen)
    assert "plotly" in seen  # through views
    graph["detectors.media"] = graph["detectors.media"] | {"detectors.calibration"}
    graph["detectors.calibration"] = graph["detectors.calibration"] | {"detectors.media"}
    assert find_cycle(graph) is not None


def test_importing_the_package_or_a_light_core_module_does_not_load_torch():
    """``import detectors`` stays light; torchvision still works after it (see ``detectors/__init__.py``)."""
    code = ("import sys, detectors, detectors.calibration, detectors.media, detectors.records; "
            "assert 'torch' not in sys.modules, 'torch loaded'; "
            "import torch; from torchvision.ops import nms; "
            "print(nms(torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11.0]]), torch.tensor([0.9, 0.8]), 0.5).tolist())")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0]"
