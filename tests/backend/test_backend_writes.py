"""Writes that never destroy a good file (issue 18): every output goes to a temporary file in its folder, flushed,
then renamed into place (inr_blender/outputs.py). Killed mid-write, failing mid-write or out of disk space, the old
file stays whole and no temporary file stays behind (one left by SIGKILL is removed by the next write)."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import read_checkpoint, save_checkpoint
from inr_blender.context import JobError
from inr_blender.fields import build_field
from inr_blender.fields.factory import field_config
from inr_blender.fileio import read_geometry, write_mesh, write_skeleton
from inr_blender.outputs import TEMP_SUFFIX, atomic_write, remove_leftovers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, cwd, **kwargs):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "inr_blender", *args], cwd=cwd, env=env, text=True, **kwargs)


def run_cli(*args, cwd):
    process = cli(*args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def waves_checkpoint(path, k: float = 0.6) -> str:
    """sin(30k x) + sin(30k y) + sin(30k z): a cheap field whose zero level has a very large mesh (about 530k
    vertices at resolution 160)."""
    config = field_config("siren", width=3, depth=0, omega0=30.0)
    state = {
        "layers.0.weight": torch.eye(3) * k,
        "layers.0.bias": torch.zeros(3),
        "layers.1.weight": torch.ones(1, 3),
        "layers.1.bias": torch.zeros(1),
    }
    return save_checkpoint({"config": config, "state_dict": state, "center": [0.0] * 3, "scale": 1.0}, str(path))


def temporaries(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(TEMP_SUFFIX))


def old_mesh(path) -> bytes:
    write_mesh(str(path), np.eye(3), np.array([[0, 1, 2]]))
    return path.read_bytes()


def kill_mid_write(tmp_path, sig) -> tuple[int, bytes]:
    """Start ``extract`` writing a large OBJ over an existing one and send ``sig`` once its temporary file has data."""
    waves_checkpoint(tmp_path / "waves.pt")
    before = old_mesh(tmp_path / "mesh.obj")
    process = cli(
        "extract", "waves.pt", "-o", "mesh.obj", "--resolution", "160", "--method", "dense", "--device", "cpu",
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            partial = [tmp_path / n for n in temporaries(tmp_path)]
            if any(p.exists() and p.stat().st_size > 1 << 20 for p in partial):  # well into the write
                process.send_signal(sig)
                break
            time.sleep(0.002)
        else:
            pytest.fail(f"the writer ended before it could be killed: {process.stderr.read() if process.stderr else ''}")
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    return process.returncode, before


@pytest.mark.slow
def test_a_writer_terminated_mid_write_leaves_the_old_mesh_and_no_temporary(tmp_path):
    code, before = kill_mid_write(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert (tmp_path / "mesh.obj").read_bytes() == before
    assert temporaries(tmp_path) == []


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_the_old_mesh_and_the_next_write_removes_its_temporary(tmp_path):
    code, before = kill_mid_write(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert (tmp_path / "mesh.obj").read_bytes() == before  # the rename never happened
    assert len(temporaries(tmp_path)) == 1  # SIGKILL cannot be caught: the partial file is left
    code, _out, err = run_cli("extract", "waves.pt", "-o", "mesh.obj", "--resolution", "16", "--device", "cpu", cwd=tmp_path)
    assert code == 0, err
    assert temporaries(tmp_path) == [] and len(read_geometry(str(tmp_path / "mesh.obj"))["vertices"]) > 3


def test_an_exception_during_a_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "mesh.obj"
    before = old_mesh(path)
    vertices = np.random.default_rng(0).normal(size=(1000, 3))
    with pytest.raises(ValueError):  # normals of the wrong shape: the vertices are written, then savetxt fails
        write_mesh(str(path), vertices, None, np.zeros((1000, 2)))
    assert path.read_bytes() == before and temporaries(tmp_path) == []
    ply = tmp_path / "mesh.ply"
    before = old_mesh(ply)
    with pytest.raises(ValueError):
        write_mesh(str(ply), vertices, np.array([[0, 1]]))  # faces that are not triangles
    assert ply.read_bytes() == before and temporaries(tmp_path) == []
    ma = tmp_path / "skeleton.ma"
    write_skeleton(str(ma), np.zeros((2, 3)), np.ones(2), np.array([[0, 1]]), np.zeros((0, 3), dtype=int))
    before = ma.read_bytes()
    with pytest.raises(ValueError):
        write_skeleton(str(ma), np.zeros((2, 3)), np.ones(2), np.array([[0, 1, 2]]), np.zeros((0, 3), dtype=int))
    assert ma.read_bytes() == before and temporaries(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), atomic_write(str(tmp_path / "any.bin")) as fh:
        fh.write(b"partial")
        raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["mesh.obj", "mesh.ply", "skeleton.ma"]


class _Interrupts:
    """Pickling it raises KeyboardInterrupt: a checkpoint save interrupted halfway through."""

    def __reduce_ex__(self, protocol):
        raise KeyboardInterrupt


def test_an_interrupted_checkpoint_save_removes_its_temporary_and_keeps_the_old_one(tmp_path):
    config = field_config("siren", width=4, depth=1)
    ckpt = {"config": config, "state_dict": build_field(config).state_dict(), "center": [0.0] * 3, "scale": 1.0}
    path = save_checkpoint(ckpt, str(tmp_path / "field.pt"))
    before = (tmp_path / "field.pt").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({**ckpt, "payload": _Interrupts()}, path)
    assert (tmp_path / "field.pt").read_bytes() == before and os.listdir(tmp_path) == ["field.pt"]


def test_a_written_file_keeps_the_old_files_permissions_and_a_new_one_gets_the_umasks(tmp_path):
    path = tmp_path / "mesh.ply"
    old_mesh(path)
    os.chmod(path, 0o640)
    write_mesh(str(path), np.eye(3), None)
    assert (path.stat().st_mode & 0o777) == 0o640
    umask = os.umask(0o022)
    try:
        write_mesh(str(tmp_path / "new.ply"), np.eye(3), None)
    finally:
        os.umask(umask)
    assert ((tmp_path / "new.ply").stat().st_mode & 0o777) == 0o644  # not mkstemp's private 0600


def test_leftovers_of_live_writers_are_kept(tmp_path):
    target = tmp_path / "mesh.ply"
    mine = tmp_path / f".mesh.ply.{os.getpid()}-abc{TEMP_SUFFIX}"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    gone = tmp_path / f".mesh.ply.{dead}-abc{TEMP_SUFFIX}"
    other = tmp_path / f".other.ply.{dead}-abc{TEMP_SUFFIX}"
    for p in (mine, gone, other):
        p.write_bytes(b"partial")
    assert remove_leftovers(str(target)) == 1
    assert mine.exists() and not gone.exists() and other.exists()  # only a dead writer's, of this file


@contextlib.contextmanager
def small_disk(tmp_path, size="1m"):
    """A tmpfs of ``size`` mounted in ``tmp_path``, or a skip where the machine does not allow mounting."""
    if sys.platform != "linux" or not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs Linux and root (the full-disk case cannot be made here)")
    point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_full_disk_keeps_the_old_file_and_says_so_in_one_line(tmp_path):
    waves_checkpoint(tmp_path / "waves.pt")
    with small_disk(tmp_path) as disk:
        before = old_mesh(disk / "mesh.obj")
        code, _out, err = run_cli("extract", str(tmp_path / "waves.pt"), "-o", "mesh.obj", "--resolution", "48", "--device", "cpu", cwd=disk)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err == "error: cannot write mesh.obj: No space left on device\n"
        assert (disk / "mesh.obj").read_bytes() == before and temporaries(disk) == []
        ckpt = read_checkpoint(str(tmp_path / "waves.pt"))
        save_checkpoint(ckpt, str(disk / "field.pt"))
        before = (disk / "field.pt").read_bytes()
        with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as fh:  # fill what is left
            while True:
                fh.write(b"\0" * 4096)
        with pytest.raises(JobError, match=r"cannot write the checkpoint to .*field.pt: No space left on device"):
            save_checkpoint({**ckpt, "padding": torch.zeros(1 << 16)}, str(disk / "field.pt"))
        assert (disk / "field.pt").read_bytes() == before and temporaries(disk) == []
