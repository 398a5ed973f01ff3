"""The seam: no bpy in the backend, no torch on the Blender side, no pickle on the wire."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

BLENDER_SIDE = ["operators", "panels"]


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


def _py_files(*dirs):
    for d in dirs:
        yield from (REPO / d).rglob("*.py")


def test_backend_never_imports_bpy_or_mathutils():
    files = list(_py_files("inr_blender"))
    assert len(files) > 5
    bad = [f"{f.relative_to(REPO)}:{line} imports {mod}" for f in files for mod, line in _imports(f) if mod in {"bpy", "mathutils", "bmesh"}]
    assert not bad, bad


def test_blender_side_never_imports_torch():
    files = list(_py_files(*BLENDER_SIDE)) + list(REPO.glob("*.py"))
    assert any(f.name == "__init__.py" for f in files)
    bad = [f"{f.relative_to(REPO)}:{line} imports {mod}" for f in files for mod, line in _imports(f) if mod in {"torch", "scipy", "skimage"}]
    assert not bad, bad


def test_nothing_uses_pickle_and_checkpoints_load_weights_only():
    for f in _py_files("inr_blender", *BLENDER_SIDE):
        assert "pickle" not in {m for m, _ in _imports(f)}, f
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", "")
                if owner == "torch" and node.func.attr == "load":
                    kw = {k.arg: k.value for k in node.keywords}
                    assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, f"{f}:{node.lineno}"
                if owner == "np" and node.func.attr == "load":
                    kw = {k.arg: k.value for k in node.keywords}
                    assert isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False, f"{f}:{node.lineno}"


def test_protocol_imports_without_torch():
    code = "import sys, inr_blender.wire.protocol, inr_blender.context; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_wire_package_imports_without_bpy_or_torch():
    code = (
        "import sys, inr_blender.wire, inr_blender.wire.protocol, inr_blender.wire.client; "
        "bad = {'torch', 'bpy'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def _operator_imports(path):
    """(module, line) for each import of a sibling module in operators/ (relative ``from . import x`` or ``from .x``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                yield node.module.split(".")[0], node.lineno
            else:
                yield from ((alias.name, node.lineno) for alias in node.names)


def test_no_operator_module_imports_another():
    operators = REPO / "operators"
    modules = {f.stem for f in operators.glob("*.py") if f.stem != "__init__"}
    assert {"fit_sdf", "camera_rig", "transfer_detail"} <= modules and (operators / "common").is_dir()
    bad = [
        f"operators/{f.name}:{line} imports {mod}"
        for f in operators.glob("*.py")
        if f.stem != "__init__"
        for mod, line in _operator_imports(f)
        if mod in modules
    ]
    assert not bad, bad
    # and the shared machinery imports no operator either
    bad = [
        f"operators/common/{f.name}:{line} imports an operator module"
        for f in (operators / "common").glob("*.py")
        for node in ast.walk(ast.parse(f.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level == 2 and (node.module or "").split(".")[0] in modules
        for line in [node.lineno]
    ]
    assert not bad, bad
