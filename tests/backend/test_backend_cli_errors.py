"""Every bad command-line input gets one clear line (issue 18): ``error: ...`` on stderr, exit code 2, no traceback,
and, where the input allows, before any computation (no progress line was printed, no output file written).

Classes: bad checkpoints, a shape space where one field is needed, outputs that cannot be written, absurd sizes,
hostile input files, command-line syntax. ``reconstruct`` takes point-cloud scans as its help says.

Each case runs ``inr_blender.cli.main`` in this process (a traceback would fail the test); a sample of every class
runs ``python -m inr_blender`` as a subprocess too (slow: a second each to import torch).
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import save_checkpoint
from inr_blender.cli import main
from inr_blender.context import JobContext, JobError
from inr_blender.fields import build_field
from inr_blender.fields.factory import field_config
from inr_blender.fileio import read_geometry, write_mesh
from inr_blender.geometry.primitives import icosphere
from inr_blender.jobs import JOBS

from nerf_scenes import write_sphere_dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL_HASHGRID = dict(levels=2, features_per_level=2, log2_table_size=8, base_resolution=4, finest_resolution=8, width=8, depth=1, init_radius=0.5)


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def subprocess_cli(*args, cwd) -> Outcome:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "inr_blender", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return Outcome(out.returncode, out.stdout, out.stderr)


@pytest.fixture
def cli(capsys, monkeypatch):
    """The command line's ``main`` run here, in ``cwd``: its exit code and what it printed."""

    def run(*args, cwd) -> Outcome:
        monkeypatch.chdir(cwd)
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def refused(out, *words) -> str:
    """The one error line of a refused command (checked: exit 2, one line, no traceback, nothing computed)."""
    assert out.returncode == 2, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    work = [line for line in out.stdout.splitlines() if "reading" not in line]
    assert not work, out.stdout  # no progress line (but reading the input), no result: refused before the computation
    for word in words:
        assert word in out.stderr, (word, out.stderr)
    return out.stderr.strip()


def sphere_state():
    torch.manual_seed(0)
    config = field_config("hashgrid", **SMALL_HASHGRID)
    return {"config": config, "state_dict": build_field(config).state_dict(), "center": [0.0, 0.0, 0.0], "scale": 1.0}


def plane_space(path, num_shapes=2) -> str:
    """A shape space whose decoder is tanh(x - 0.2) for every code: its shapes have a surface (the plane x = 0.2)."""
    config = field_config("shape_space", num_shapes=num_shapes, latent_size=2, width=1, depth=1, skip=0, dropout=0.0, weight_norm=False)
    space = build_field(config)
    state = space.state_dict()
    state["decoder.hidden.0.weight"] = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])
    state["decoder.hidden.0.bias"] = torch.tensor([2.0])  # relu(x + 2) = x + 2 inside the cube
    state["decoder.last.weight"] = torch.tensor([[1.0]])
    state["decoder.last.bias"] = torch.tensor([-2.2])
    frames = {"center": [0.0] * 3, "scale": 1.0, "centers": [[0.0] * 3] * num_shapes, "scales": [1.0] * num_shapes}
    return save_checkpoint({"format": "inr_blender.shape_space", "config": config, "state_dict": state, **frames}, str(path))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-errors")
    save_checkpoint(sphere_state(), str(folder / "sphere.pt"))
    plane_space(folder / "space.pt")
    vertices, faces = icosphere(0.5, 2)
    write_mesh(str(folder / "mesh.ply"), vertices, faces)
    normals = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    write_mesh(str(folder / "cloud.ply"), vertices, None, normals)
    write_sphere_dataset(str(folder / "scene"), count=2, size=8, focal=10.0)
    return folder


# -- checkpoints: checked once when loaded ------------------------------------------------------------------------


def bad_checkpoints(folder):
    state = sphere_state()
    yield "no center or scale", {k: v for k, v in state.items() if k not in ("center", "scale")}, "lacks its center and scale"
    yield "no scale", {k: v for k, v in state.items() if k != "scale"}, "lacks its scale"
    yield "zero scale", {**state, "scale": 0.0}, "bad scale 0.0"
    yield "negative scale", {**state, "scale": -2.0}, "bad scale -2.0"
    yield "NaN scale", {**state, "scale": float("nan")}, "bad scale nan"
    yield "infinite scale", {**state, "scale": float("inf")}, "bad scale inf"
    yield "text scale", {**state, "scale": "big"}, "bad scale 'big'"
    yield "short center", {**state, "center": [0.0, 1.0]}, "bad center"
    yield "NaN center", {**state, "center": [0.0, float("nan"), 0.0]}, "bad center"
    yield "no state_dict", {k: v for k, v in state.items() if k != "state_dict"}, "is not an inr_blender field checkpoint"
    yield "wrong network", {**state, "config": {**state["config"], "width": 16}}, "does not match its network config"
    yield "unknown kind", {**state, "config": {"kind": "teapot"}}, "teapot"
    yield "not a dict", torch.zeros(3), "is not an inr_blender field checkpoint"


def test_bad_checkpoints_are_refused_in_one_line_before_anything_is_written(cli, site, tmp_path):
    cases = 0
    for label, ckpt, words in bad_checkpoints(site):
        torch.save(ckpt, tmp_path / "bad.pt")
        for command in (["extract", "bad.pt", "-o", "mesh.ply", "--resolution", "16"], ["isopoints", "bad.pt", "-o", "points.ply"]):
            line = refused(cli(*command, "--device", "cpu", cwd=tmp_path), words)
            assert line.startswith("error: ") and label, line
            cases += 1
        assert not (tmp_path / "mesh.ply").exists() and not (tmp_path / "points.ply").exists()
        for job, params in (("closest_points", {}), ("raycast_view", {"width": 2, "height": 2, "intrinsics": [2.0, 2.0, 1.0, 1.0]})):
            with pytest.raises(JobError, match="^(checkpoint|the checkpoint)") as caught:  # every job: checked where loaded
                JOBS[job](
                    {"checkpoint_path": str(tmp_path / "bad.pt"), "device": "cpu", **params},
                    {"points": np.zeros((1, 3)), "c2w": np.eye(4)},
                    JobContext(),
                )
            assert words in str(caught.value)
            cases += 1
    (tmp_path / "garbage.pt").write_bytes(os.urandom(4096))
    refused(cli("extract", "garbage.pt", "-o", "mesh.ply", cwd=tmp_path), "cannot read checkpoint garbage.pt")
    refused(cli("extract", "missing.pt", "-o", "mesh.ply", cwd=tmp_path), "checkpoint not found: missing.pt")
    assert cases + 2 == 54


def test_shape_space_checkpoints_need_a_frame_per_shape(cli, site, tmp_path):
    space = torch.load(site / "space.pt", weights_only=True)
    for change, words in [
        ({"scales": [1.0, 0.0]}, "bad center or scale of a shape"),
        ({"scales": [1.0]}, "one of each per shape"),
        ({"centers": [[0.0] * 3] * 3, "scales": [1.0] * 3}, "3 centers and scales for 2 shapes"),
    ]:
        torch.save({**space, **change}, tmp_path / "space.pt")
        refused(cli("interpolate", "space.pt", "0", "1", "-o", "steps.ply", "--resolution", "8", cwd=tmp_path), words)


def test_a_shape_space_is_refused_where_one_field_is_needed(cli, site, tmp_path):
    for command, what in (("skeleton", "skeletons"), ("isopoints", "iso-points")):
        line = refused(cli(command, str(site / "space.pt"), "-o", "out.obj", "--device", "cpu", cwd=tmp_path))
        assert line.startswith(f"error: this field is a shape space of 2 shapes: {what} need one signed distance field")


# -- reconstruct: point-cloud scans, as its help says ---------------------------------------------------------------


def test_reconstruct_takes_point_cloud_scans(cli, site, tmp_path):
    rng = np.random.default_rng(0)
    points = np.column_stack([np.full(300, 0.2), rng.uniform(-0.5, 0.5, (300, 2))])  # on the decoder's plane
    normals = np.tile([1.0, 0.0, 0.0], (300, 1))
    write_mesh(str(tmp_path / "scan.ply"), points, None, normals)  # PLY points with normals
    write_mesh(str(tmp_path / "scan.obj"), points, None)  # vertex-only OBJ
    np.savez(tmp_path / "scan.npz", points=points)  # npz points
    (tmp_path / "mesh.obj").write_text("".join(f"v {x} {y} {z}\n" for x, y, z in points[:3]) + "f 1 2 3\n")  # a mesh scan too
    for scan in ("scan.ply", "scan.obj", "scan.npz", "mesh.obj"):
        out = cli(
            "reconstruct", str(site / "space.pt"), scan, "-o", "done.ply", "--iterations", "5", "--resolution", "16", "--device", "cpu", cwd=tmp_path
        )
        assert out.returncode == 0, out.stderr
        count = 3 if scan == "mesh.obj" else 300
        assert f"completed the scan ({count} points" in out.stdout
        mesh = read_geometry(str(tmp_path / "done.ply"))
        assert np.abs(mesh["vertices"][:, 0] - 0.2).max() < 0.05  # the plane
        os.remove(tmp_path / "done.ply")


# -- outputs: checked before the work -------------------------------------------------------------------------------


def test_outputs_that_cannot_be_written_are_refused_before_the_work(cli, site, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("keep")
    sphere = str(site / "sphere.pt")
    slow = ["--resolution", "1024", "--method", "dense", "--device", "cpu"]  # minutes of work, were it started
    cases = [
        (["extract", sphere, "-o", "mesh.xyz", *slow], "cannot write the output to mesh.xyz: unknown format .xyz; use .obj, .ply"),
        (["extract", sphere, "-o", "mesh", *slow], "unknown format (no extension)"),
        (["extract", sphere, "-o", "folder", *slow], "unknown format (no extension)"),
        (["extract", sphere, "-o", "folder.ply/", *slow], "unknown format"),
        (["isopoints", sphere, "-o", "points.ma"], "unknown format .ma; use .obj, .ply"),
        (["skeleton", sphere, "-o", "skeleton.ply"], "unknown format .ply; use .ma, .obj"),
        (["interpolate", str(site / "space.pt"), "0", "1", "-o", "steps.stl"], "unknown format .stl"),
        (["reconstruct", str(site / "space.pt"), str(site / "cloud.ply"), "-o", "done.txt"], "unknown format .txt"),
        (["render-view", sphere, str(site / "scene"), "-o", "view.bmp"], "unknown format .bmp; use .png, .jpg, .jpeg"),
        (["info", "-o", "result.json"], "cannot write the arrays to result.json: unknown format .json; use .npz"),
        (["extract", sphere, "-o", "file.txt/mesh.ply", *slow], "file.txt is not a folder"),
        (["fit-sdf", str(site / "cloud.ply"), "-o", "folder", "--iterations", "100000"], "cannot write the checkpoint to", "it is a folder"),
        (["fit-sdf", str(site / "cloud.ply"), "-o", "file.txt", "--iterations", "100000"], "a file that is not a field checkpoint is there"),
        (["fit-sdf", str(site / "cloud.ply"), "-o", "file.txt/f.pt", "--iterations", "100000"], "file.txt is not a folder"),
        (["fit-nerf", str(site / "scene"), "-o", "folder", "--iterations", "100000"], "it is a folder"),
        (["reconstruct", str(site / "space.pt"), str(site / "cloud.ply"), "-o", "done.ply", "--field", "folder"], "it is a folder"),
    ]
    for args, *words in cases:
        refused(cli(*args, cwd=tmp_path), *words)
    folder = tmp_path / "folder"
    (folder / "sub.ply").mkdir()
    refused(cli("extract", sphere, "-o", "folder/sub.ply", *slow, cwd=tmp_path), "cannot write the output to folder/sub.ply: it is a folder")
    assert sorted(os.listdir(tmp_path)) == ["file.txt", "folder"] and (tmp_path / "file.txt").read_text() == "keep"
    assert len(cases) + 1 == 17


def test_a_read_only_folder_is_refused_before_the_work(cli, site, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
    else:  # root writes anywhere a mode allows: only a read-only mount stops it
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"root ignores folder modes, and a read-only tmpfs cannot be mounted here: {mounted.stderr.strip()}")
    try:
        refused(cli("extract", str(site / "sphere.pt"), "-o", "locked/mesh.ply", "--resolution", "1024", cwd=tmp_path), "locked is not writable")
        refused(cli("extract", str(site / "sphere.pt"), "-o", "locked/new/mesh.ply", "--resolution", "1024", cwd=tmp_path), "locked is not writable")
        refused(cli("fit-sdf", str(site / "cloud.ply"), "-o", "locked/f.pt", cwd=tmp_path), "locked is not writable")
    finally:
        if os.geteuid() != 0:
            os.chmod(folder, 0o755)
        else:
            subprocess.run(["umount", "-l", str(folder)], check=False)


# -- absurd sizes: refused up front ---------------------------------------------------------------------------------


def test_absurd_sizes_are_refused_up_front(cli, site, tmp_path):
    cloud, mesh, sphere, space = (str(site / n) for n in ("cloud.ply", "mesh.ply", "sphere.pt", "space.pt"))
    cases = [
        (["fit-sdf", cloud, "-o", "f.pt", "--batch-size", "100000000000"], "parameter batch_size must be at most 1048576"),
        (["fit-sdf", cloud, "-o", "f.pt", "--width", "1000000000"], "parameter width must be at most 4096"),
        (["fit-sdf", cloud, "-o", "f.pt", "--depth", "100000"], "parameter depth must be at most 64"),
        (["fit-sdf", mesh, "-o", "f.pt", "--num-samples", "1000000000000"], "parameter num_samples must be at most 10000000"),
        (["fit-sdf", cloud, "-o", "f.pt", "--batch-size", "1000000", "--width", "4096", "--depth", "64"], "fit_sdf: a step of 1,000,000 points"),
        (["fit-sdf", cloud, "-o", "f.pt", "--method", "hashgrid", "--log2-table-size", "30", "--levels", "32"], "needs at least"),
        (["fit-sdf", cloud, "-o", "f.pt", "--iterations", "1e400"], "parameter iterations must be an integer"),
        (["fit-sdf", cloud, "-o", "f.pt", "--iterations", "9" * 5000], "parameter iterations must be an integer"),
        (["metrics", mesh, mesh, "--num-samples", "10000000000"], "parameter num_samples must be at most 10000000"),
        (["interpolate", space, "0", "1", "-o", "s.ply", "--count", "100000000"], "parameter count must be at most 1000"),
        (["extract", sphere, "-o", "m.ply", "--resolution", "100000"], "resolution 100000 needs about"),
        (["isopoints", sphere, "-o", "p.ply", "--count", "1000000000"], "iso-points need about"),
        (["fit-nerf", str(site / "scene"), "-o", "n.pt", "--batch-rays", "1000000000", "--model", "classic"], "batch_rays must be at most"),
        (["fit-nerf", str(site / "scene"), "-o", "n.pt", "--width", "100000"], "parameter width must be at most 4096"),
        (["fit-shape-space", mesh, mesh, "-o", "s.pt", "--samples-per-shape", "1000000", "--shapes-per-step", "1000"], "samples per step"),
        (["skeleton", sphere, "-o", "s.ma", "--surface-samples", "100000000"], "num_surface_samples must be at most 1000000"),
    ]
    for args, words in cases:
        refused(cli(*args, cwd=tmp_path), words)
    assert os.listdir(tmp_path) == [] and len(cases) == 16


# -- hostile input files --------------------------------------------------------------------------------------------


def test_hostile_input_files_get_one_line(cli, site, tmp_path):
    scene = tmp_path / "scene"
    write_sphere_dataset(str(scene), count=2, size=8, focal=10.0)
    meta = json.loads((scene / "transforms.json").read_text())
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "transforms.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "transforms.json").write_text(json.dumps({**meta, "extra": json.loads("[" * 200 + "]" * 200)}))
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "transforms.json").write_text(json.dumps(meta)[:-1] + ', "w": ' + "9" * 100_000 + "}")
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "transforms.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "pickled.npz").write_bytes(b"")
    np.savez(tmp_path / "objects.npz", points=np.array([{"a": 1}], dtype=object))
    (tmp_path / "notzip.npz").write_text("not a zip")
    (tmp_path / "truncated.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1000\nproperty float x\nproperty float y\nproperty float z\nend_header\n\0\0"
    )
    (tmp_path / "cloud.xyz").write_text("0 0 0\n")
    (tmp_path / "folder.ply").mkdir()
    sphere = str(site / "sphere.pt")
    cases = [
        (["fit-nerf", "deep", "-o", "n.pt"], "nested too deeply"),
        (["fit-nerf", "nested", "-o", "n.pt"], "nested deeper than 32 levels"),
        (["fit-nerf", "digits", "-o", "n.pt"], "cannot read"),
        (["fit-nerf", "binary", "-o", "n.pt"], "cannot read"),
        (["render-view", sphere, "deep", "-o", "v.png"], "nested too deeply"),
        (["render-view", sphere, str(scene), "-o", "v.png", "--view", "7"], "view 7 does not exist"),
        (["closest-points", "--checkpoint-path", sphere, "--arrays", "objects.npz", "-o", "c.npz"], "cannot read a file"),
        (["closest-points", "--checkpoint-path", sphere, "--arrays", "notzip.npz", "-o", "c.npz"], "cannot read"),
        (["closest-points", "--checkpoint-path", sphere, "--arrays", "pickled.npz", "-o", "c.npz"], "cannot read"),
        (
            ["closest-points", "--checkpoint-path", sphere, "--arrays", "missing.npz", "-o", "c.npz"],
            "cannot read missing.npz: No such file or directory",
        ),
        (["fit-sdf", "truncated.ply", "-o", "f.pt"], "PLY body is truncated"),
        (["fit-sdf", "cloud.xyz", "-o", "f.pt"], "unknown format .xyz"),
        (["fit-sdf", "missing.ply", "-o", "f.pt"], "file not found: missing.ply"),
        (["fit-sdf", "folder.ply", "-o", "f.pt"], "file not found: folder.ply"),
        (["metrics", "missing.ply", "folder.ply"], "file not found"),
    ]
    for args, words in cases:
        refused(cli(*args, cwd=tmp_path), words)
    assert not any(name.endswith((".pt", ".png")) for name in os.listdir(tmp_path)) and len(cases) == 15


def test_command_line_syntax_errors_are_one_line_too(cli, tmp_path):
    for args, words in [
        (["extract", "f.pt"], "the following arguments are required: -o/--output"),
        (["interpolate", "s.pt", "zero", "1", "-o", "s.ply"], "invalid int value: 'zero'"),
        (["teleport"], "invalid choice: 'teleport'"),
        (["extract", "f.pt", "-o", "m.ply", "--resolution", "many"], "parameter resolution must be an integer, got 'many'"),
    ]:
        refused(cli(*args, cwd=tmp_path), words)


@pytest.mark.slow
def test_the_real_command_exits_2_with_one_line_for_a_sample_of_every_class(site, tmp_path):
    """``python -m inr_blender`` as a user runs it: the exit code and the one line reach the shell."""
    state = sphere_state()
    torch.save({**state, "scale": 0.0}, tmp_path / "flat.pt")
    (tmp_path / "folder").mkdir()
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    cases = [
        (["extract", "flat.pt", "-o", "m.ply"], "bad scale 0.0"),
        (["skeleton", str(site / "space.pt"), "-o", "s.ma"], "shape space"),
        (["extract", str(site / "sphere.pt"), "-o", "m.xyz", "--resolution", "1024"], "unknown format .xyz"),
        (["fit-sdf", str(site / "cloud.ply"), "-o", "folder"], "it is a folder"),
        (["metrics", str(site / "mesh.ply"), str(site / "mesh.ply"), "--num-samples", "10000000000"], "at most 10000000"),
        (["fit-nerf", "deep.json", "-o", "n.pt"], "nested too deeply"),
        (["extract", "f.pt"], "required: -o/--output"),
    ]
    for args, words in cases:
        refused(subprocess_cli(*args, cwd=tmp_path), words)
