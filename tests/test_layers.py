"""The code's shape, read from its source: serving/ imports one way, in the layers docs/serving.md draws, with
service.py alone on top wiring the pieces; and eeg2arm/, export/ and serving/ use no private part of a dependency
(no module or attribute whose name starts with an underscore, outside their own objects)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OWN = ("eeg2arm", "export", "serving")

# A module may import only modules of a lower layer (docs/serving.md, "Layers").
LAYERS = {
    "settings": 0, "errors": 0, "budget": 0, "batching": 0, "streams": 0, "model_source": 0, "client": 0,
    "local_server": 0, "__init__": 0,
    "windows": 1, "startup": 1,
    "json_scan": 2,
    "front": 3, "guard": 3, "stream_ws": 3,
    "routes": 4, "openapi": 4,
    "service": 5,
}


def sources(*packages: str) -> list[Path]:
    return sorted(f for package in packages for f in (REPO / package).rglob("*.py"))


def serving_imports(path: Path) -> set[str]:
    """The serving modules that `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("serving."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("serving.")}
    return found


def test_every_serving_module_has_a_layer():
    assert {p.stem for p in sources("serving")} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_serving_imports_run_one_way(module):
    """service, front, routes and stream_ws imported one another, hidden by function-level imports (issue 17)."""
    for imported in serving_imports(REPO / "serving" / f"{module}.py"):
        assert LAYERS[imported] < LAYERS[module], f"serving/{module}.py imports {imported}, not of a lower layer"


def test_only_service_wires_the_pieces():
    importers = [p.stem for p in sources("serving") if "service" in serving_imports(p)]
    assert importers == [] and max(LAYERS.values()) == LAYERS["service"] and \
        list(LAYERS.values()).count(LAYERS["service"]) == 1


def private_uses(path: Path) -> list[str]:
    """Imports of a dependency's private modules or names, and `x._name` on anything but self and cls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            for module in modules:
                parts = module.split(".") + names
                if module.split(".")[0] not in OWN and any(p.startswith("_") and p != "__future__" for p in parts):
                    found.append(f"{path.name}:{node.lineno} imports {'.'.join([module, *names])}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.name}:{node.lineno} uses .{node.attr}")
    return found


def test_no_private_api_of_a_dependency():
    """serving/ subclassed uvicorn's protocols and patched its globals, filtered a logger of bentoml._internal and
    overrode Service.to_asgi; eeg2arm/realtime/record.py called MNE's Info._unlock() (issue 17)."""
    assert [use for path in sources(*OWN) for use in private_uses(path)] == []


def test_the_private_api_check_is_real(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from bentoml._internal.log import x\nimport uvicorn._compat\n"
                     "def f(info):\n    info._unlock()\n    self._ok = 1\n")
    assert private_uses(probe) == ["probe.py:1 imports bentoml._internal.log.x", "probe.py:2 imports uvicorn._compat",
                                   "probe.py:4 uses ._unlock"]
