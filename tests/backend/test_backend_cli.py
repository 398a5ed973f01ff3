"""The command line, run as a user would: ``python -m inr_blender ...`` in a subprocess."""

import os
import subprocess
import sys

import numpy as np
import pytest

from inr_blender.fileio import read_geometry, write_mesh
from inr_blender.geometry.metrics import compare_meshes
from inr_blender.geometry.primitives import icosphere

pytestmark = pytest.mark.slow  # every test here fits a field or runs a job: seconds to minutes on two cores

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "inr_blender", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_fit_extract_metrics_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    d = rng.normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    center, radius = np.array([0.0, 0.0, 2.0]), 1.5
    write_mesh(str(tmp_path / "cloud.ply"), center + radius * d, None, d)

    fit = cli(
        "fit-sdf",
        "cloud.ply",
        "-o",
        "out/field.pt",
        "--method",
        "igr",
        "--iterations",
        "150",
        "--width",
        "64",
        "--depth",
        "3",
        "--batch-size",
        "1024",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr
    assert "fitting IGR: 150/150 (100%)" in fit.stdout and " steps/s, took " in fit.stdout  # the progress's last line
    assert "stopped: reached the iteration limit (150 steps)" in fit.stdout
    assert (tmp_path / "out" / "field.pt").is_file()

    ext = cli("extract", "out/field.pt", "-o", "mesh.obj", "--resolution", "40", "--device", "cpu", cwd=tmp_path)
    assert ext.returncode == 0, ext.stderr
    mesh = read_geometry(str(tmp_path / "mesh.obj"))
    sv, sf = icosphere(radius, 4, center)
    # World space: the mesh sits on the input sphere. Cells are 5% of the radius,
    # and a fit that had not moved off the initial sphere would score ~0.37.
    assert compare_meshes(sv, sf, mesh["vertices"], mesh["faces"], 20_000)["chamfer_l1_normalized"] < 0.05

    write_mesh(str(tmp_path / "ref.ply"), sv, sf)
    met = cli("metrics", "ref.ply", "mesh.obj", "--num-samples", "5000", cwd=tmp_path)
    assert met.returncode == 0, met.stderr
    values = dict(line.split(": ", 1) for line in met.stdout.splitlines() if ": " in line)
    assert {"Chamfer-L1", "Chamfer-L2", "Hausdorff", "F-score"} <= set(values)
    assert "world units" in values["Chamfer-L1"] and "of the reference's radius r" in values["Chamfer-L1"]
    assert float(values["reference radius r"].split()[0]) == pytest.approx(radius, rel=1e-3)


def test_cli_errors_exit_2(tmp_path):
    missing = cli("extract", "nothing.pt", "-o", "mesh.ply", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: checkpoint not found: nothing.pt"
    (tmp_path / "cloud.xyz").write_text("0 0 0\n")
    bad = cli("fit-sdf", "cloud.xyz", "-o", "f.pt", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot read") and "unknown format .xyz" in bad.stderr
