"""Structure rules: imports point one way through the layers, and the code is ruff clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tagloop"

# cli → api, web, demo → app → services → jobs → storage, recipes → domain → errors, settings
# A component imports only components of lower layers (recipes and storage never import each
# other; jobs use storage for their rows, never a recipe).
LAYERS = {
    "errors": 0,
    "settings": 0,
    "domain": 1,
    "recipes": 2,
    "storage": 2,
    "plots": 2,  # SVG drawing (matplotlib) of figures computed elsewhere
    "jobs": 3,
    "services": 4,
    "app": 5,
    "demo": 6,  # seeds a Tagloop (the app object) with the demo classifier
    "api": 6,
    "web": 6,  # the web UI, a door of the server beside the API
    "cli": 7,  # `tagloop serve` starts the API
}
ALLOWED = {("tagloop.api.server", "web")}
"""Imports within one layer that are allowed: the server mounts the web UI's routes and
answers its errors with its pages (the web UI imports nothing of api/)."""
DOMAIN_FORBIDDEN = ("sqlalchemy", "alembic", "fsspec", "fastapi", "uvicorn", "typer", "rich", "psycopg")


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _modules() -> list[tuple[str, Path]]:
    result = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC.parent).with_suffix("")
        result.append((".".join(relative.parts), path))
    return result


def test_every_package_is_assigned_a_layer():
    components = {_component(module) for module, _ in _modules()} - {"__init__"}
    assert components <= set(LAYERS), f"add these to LAYERS: {components - set(LAYERS)}"


def test_imports_point_one_way():
    violations = []
    for module, path in _modules():
        own = _component(module)
        if own == "__init__":
            continue
        for imported in _imports(path):
            if not imported.startswith("tagloop.") or "migrations" in module:
                continue
            target = _component(imported)
            if (module, target) in ALLOWED:
                continue
            if target in LAYERS and target != own and LAYERS[target] >= LAYERS[own]:
                violations.append(f"{module} imports {imported}")
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def test_domain_does_no_io():
    violations = [
        f"{module} imports {imported}"
        for module, path in _modules()
        if _component(module) in ("domain", "recipes")
        for imported in _imports(path)
        if imported.split(".")[0] in DOMAIN_FORBIDDEN
    ]
    assert not violations, "\n".join(violations)


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a dev dependency; install the dev extras"
    root = SRC.parents[1]
    checked = subprocess.run(
        [ruff, "check", "src", "tests", "benchmarks"], cwd=root, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = subprocess.run(
        [ruff, "format", "--check", "src", "tests", "benchmarks"], cwd=root, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_mypy_clean():
    """The types of src/ check (settings in pyproject.toml's [tool.mypy]); `make lint` runs it too."""
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    assert mypy, "mypy is a dev dependency; install the dev extras"
    root = SRC.parents[1]
    checked = subprocess.run([mypy], cwd=root, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _requirement_names(requirements: list[str] | None) -> set[str]:
    """Distribution names of requirements that apply without extras."""
    from packaging.requirements import Requirement

    names = set()
    for line in requirements or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.add(_canonical(requirement.name))
    return names


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_every_import_is_installed_by_the_runtime_dependencies():
    """`make run` installs the package without extras: what src imports must come with it."""
    import tomllib
    from importlib import metadata

    declared = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    installed, pending = set(), _requirement_names(declared)
    while pending:  # the runtime dependencies and everything they require in turn
        name = pending.pop()
        installed.add(name)
        pending |= _requirement_names(metadata.requires(name)) - installed
    providers = metadata.packages_distributions()
    missing = {}
    for module, path in _modules():
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top == "tagloop" or top in sys.stdlib_module_names:
                continue
            dists = {_canonical(dist) for dist in providers.get(top, [])}
            if not dists & installed:
                missing.setdefault(top, module)
    assert not missing, f"imported but not installed by [project].dependencies: {missing}"


SERVE_WITHOUT_SKLEARN = """
import sys
from pathlib import Path
import tagloop.api.server  # the server and everything it imports at start
from tagloop.recipes.registry import load_model
model = load_model(Path(sys.argv[1]).read_bytes())
print(model.labels[int(model.scores(["the printer is jammed again"])[0].argmax())])
print(sorted(name for name in sys.modules if name == "sklearn" or name.startswith("sklearn.")))
"""


def test_serving_a_saved_model_never_imports_scikit_learn(tmp_path):
    """scikit-learn takes about a second to import: only training and evaluation need it."""
    import numpy as np

    from tagloop.domain.records import Mode
    from tagloop.recipes import tfidf_linear
    from tagloop.recipes.registry import load_model

    texts = [f"the printer is jammed {i}" for i in range(20)] + [f"refund my invoice {i}" for i in range(20)]
    truth = np.repeat(np.eye(2), 20, axis=0)
    model = tfidf_linear.fit(Mode.MULTI_CLASS, ["HARDWARE", "BILLING"], texts, truth, ["H"] * 20 + ["B"] * 20)
    path = tmp_path / "model.bin"
    path.write_bytes(model.to_bytes())
    done = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_SKLEARN, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == ["HARDWARE", "[]"]
    loaded = load_model(path.read_bytes())
    assert loaded.vectorizer.vocabulary_ == model.vectorizer.vocabulary_  # still there on demand
