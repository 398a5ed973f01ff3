"""Packaging: Blender's own extension tool validates and builds the zip, and the zip works installed.

The install runs in a fresh Blender user profile (BLENDER_USER_RESOURCES) in a child
process, enables the extension as ``bl_ext.user_default.neural_fields`` and drives
its operators from the installed copy, so relative imports and packaging are proven.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import REPO


def blender_ext() -> Path:
    bpy_spec = __import__("importlib.util").util.find_spec("bpy")
    if bpy_spec is None:
        pytest.skip("the bpy module is not installed")
    path = next(Path(bpy_spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"), None)
    assert path is not None, "blender_ext.py not found inside the bpy module"
    return path


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, str(blender_ext()), "build", "--source-dir", str(REPO), "--output-dir", str(out)], check=True, capture_output=True, text=True
    )
    zips = list(out.glob("*.zip"))
    assert len(zips) == 1
    return zips[0]


def test_manifest_validates():
    result = subprocess.run([sys.executable, str(blender_ext()), "validate", str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0 and "FATAL" not in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.slow
def test_zip_holds_the_extension_and_the_backend_but_no_tests(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    for required in (
        "blender_manifest.toml",
        "__init__.py",
        "preferences.py",
        "operators/fit_sdf.py",
        "panels/field.py",
        "inr_blender/wire/worker.py",
        "inr_blender/requirements.txt",
    ):
        assert required in names, required
    assert not [n for n in names if n.startswith(("tests/", ".venv", "bench/", ".ci/", ".git/", ".gpu_data/")) or "__pycache__" in n]
    result = subprocess.run([sys.executable, str(blender_ext()), "validate", str(built_zip)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zip_leaves_out_the_docs_and_the_gallery(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert (REPO / "docs" / "gallery" / "make_gallery.py").exists(), "the gallery moved: update this test"
    shipped = [n for n in names if n.startswith(("docs/", "bench/")) or n.endswith(".png") or n == "README.md"]
    assert shipped == [], shipped  # the README's pictures and links point into docs/, which stays out
    assert "__init__.py" in names and "inr_blender/jobs/isopoints.py" in names


INSTALLED_RUN = textwrap.dedent(
    """
    import sys
    import bpy

    zip_path, profile = sys.argv[-2], sys.argv[-1]
    assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True) == {"FINISHED"}
    name = "bl_ext.user_default.neural_fields"
    assert name in bpy.context.preferences.addons, "not enabled"
    module = sys.modules[name]
    assert module.__file__.startswith(profile), module.__file__
    prefs = bpy.context.preferences.addons[name].preferences
    prefs.backend_mode, prefs.python_path, prefs.device = "PYTHON", sys.executable, "CPU"
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=3)
    assert bpy.ops.inr.fit_sdf(method="IGR", iterations=30, width=32, depth=2, batch_size=512, num_samples=3000) == {"FINISHED"}
    field = bpy.context.active_object
    assert field.inr_field.is_field and field.inr_field.checkpoint.startswith(profile), field.inr_field.checkpoint
    assert bpy.ops.inr.extract_mesh(resolution=32) == {"FINISHED"}
    assert len(bpy.context.active_object.data.vertices) > 100
    client = sys.modules[name + ".inr_blender.wire.client"]
    assert client.ADDON_ROOT.startswith(profile), client.ADDON_ROOT  # the worker ran the installed backend
    print("INSTALLED-OK")
    """
)


@pytest.mark.slow
def test_zip_installs_into_a_fresh_profile_and_its_operators_run(built_zip, tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    script = tmp_path / "run_installed.py"
    script.write_text(INSTALLED_RUN)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(profile))
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, str(script), str(built_zip), str(profile)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert "INSTALLED-OK" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
