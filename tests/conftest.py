"""Shared fixtures: the add-on enabled in the real bpy module, a clean scene, scene builders.

Backend-only tests (test_backend_*) need no bpy; everything else runs in the
real ``bpy`` module with a real worker subprocess started from this interpreter.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# Without CUDA (CI), Triton's kernels run in its interpreter; the flag is read when a kernel module is first
# imported, so it is set before any test imports one.
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

REPO = Path(__file__).resolve().parent.parent
ADDON_ID = "neural_fields"
SHARED_DATA = REPO.parent / "shared" / "data"


def _bpy():
    try:
        import bpy  # noqa: F401
    except ImportError:
        pytest.skip("the bpy module is not installed (run the tests with `make test`)")
    return sys.modules["bpy"]


@pytest.fixture(scope="session")
def addon(tmp_path_factory):
    """The add-on, enabled from a symlink named like its id, using this Python as its backend."""
    _bpy()
    import addon_utils

    root = tmp_path_factory.mktemp("addons")
    (root / ADDON_ID).symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(root))
    module = addon_utils.enable(ADDON_ID, default_set=True, handle_error=None)
    assert module is not None, "the add-on did not enable"
    set_local_backend()
    yield module
    addon_utils.disable(ADDON_ID, default_set=True)
    sys.path.remove(str(root))


def prefs():
    import bpy

    return bpy.context.preferences.addons[ADDON_ID].preferences


def set_local_backend(python: str | None = None) -> None:
    p = prefs()
    p.backend_mode = "PYTHON"
    p.python_path = python or sys.executable
    p.device = "CPU"


@pytest.fixture
def scene(addon):
    """An empty scene; the backend preference is restored after each test."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    set_local_backend()
    yield bpy.context.scene
    set_local_backend()


def select_only(*objects) -> None:
    """Select exactly ``objects``; the first becomes active (none: no active object)."""
    import bpy

    for o in bpy.context.selected_objects:
        o.select_set(False)
    for o in objects:
        o.select_set(True)
    bpy.context.view_layer.objects.active = objects[0] if objects else None


def add_suzanne(subdivision_levels: int = 1, location=(0.0, 0.0, 0.0)):
    """Suzanne with a Subdivision Surface modifier, selected and active (as in the demo)."""
    import bpy

    bpy.ops.mesh.primitive_monkey_add(size=2.0, location=location)
    obj = bpy.context.active_object
    mod = obj.modifiers.new("Subdivision", "SUBSURF")
    mod.levels = subdivision_levels
    mod.render_levels = subdivision_levels
    bpy.ops.object.shade_smooth()
    return obj


def add_point_cloud(points: np.ndarray, normals: np.ndarray | None = None, name: str = "Scan"):
    """A vertex-only mesh (what a PLY scan imports as), with an optional ``normal`` attribute."""
    import bpy

    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(points))
    mesh.vertices.foreach_set("co", np.asarray(points, dtype=np.float32).ravel())
    if normals is not None:
        attr = mesh.attributes.new("normal", "FLOAT_VECTOR", "POINT")
        attr.data.foreach_set("vector", np.asarray(normals, dtype=np.float32).ravel())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(obj)
    for o in bpy.context.selected_objects:
        o.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    return obj


def sphere_points(n: int, radius: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return normals * radius, normals


def scene_state():
    """What a failed operator must leave unchanged: objects, meshes, selection, active object."""
    import bpy

    return (
        sorted(o.name for o in bpy.data.objects),
        sorted(m.name for m in bpy.data.meshes),
        sorted(o.name for o in bpy.context.selected_objects),
        bpy.context.view_layer.objects.active.name if bpy.context.view_layer.objects.active else None,
    )


def needs_shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (it sits beside the checkout in CI)")
    return path


@pytest.fixture
def remote_worker(tmp_path):
    """A worker started as a user would on a GPU machine: python -m inr_blender serve."""
    token = secrets.token_hex(8)
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inr_blender",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--token",
            token,
            "--port-file",
            str(port_file),
            "--workdir",
            str(tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not port_file.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "worker did not start"
        time.sleep(0.05)
    yield proc, int(port_file.read_text()), token
    proc.kill()
    proc.wait()


os.environ.setdefault("OMP_NUM_THREADS", "2")


def fake_field(kind: str, checkpoint: str = "/nonexistent/field.pt", location=(0.0, 0.0, 0.0), scale: float = 1.0):
    """A field object as a fit makes one, with the given checkpoint (for refusals); selected and active."""
    import bpy

    obj = bpy.data.objects.new(f"{kind} Field", None)
    obj.location, obj.scale = location, (scale,) * 3
    bpy.context.collection.objects.link(obj)
    obj.inr_field.is_field, obj.inr_field.kind, obj.inr_field.checkpoint = True, kind, checkpoint
    select_only(obj)
    return obj


def inside_everywhere_checkpoint(path: str) -> str:
    """A small IGR checkpoint whose field is negative all over [-1, 1]^3: inside everywhere, no surface."""
    import torch

    from inr_blender.checkpoint import save_checkpoint
    from inr_blender.fields import build_field
    from inr_blender.fields.factory import field_config

    config = field_config("igr", width=16, depth=2)
    torch.manual_seed(0)
    state = build_field(config).state_dict()
    last_bias = [k for k in state if k.endswith("bias")][-1]
    state[last_bias] -= 100.0
    return save_checkpoint({"config": config, "state_dict": state, "center": [0.0, 0.0, 0.0], "scale": 1.0}, path)


def world_points(obj) -> np.ndarray:
    """An object's mesh vertices in world space, (V, 3) float64."""
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float64)
    obj.data.vertices.foreach_get("co", co)
    mat = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ mat[:3, :3].T + mat[:3, 3]


def open_field(blend_path, name: str):
    """Open a saved .blend and select its field object ``name``; return it."""
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(blend_path))
    field = bpy.data.objects[name]
    select_only(field)
    return field


def refused(operator, match: str, **kwargs) -> None:
    """``operator(**kwargs)`` fails with a one-line reason matching ``match`` and leaves the scene and node groups as they were."""
    import bpy

    before = scene_state()
    groups = sorted(g.name for g in bpy.data.node_groups)
    with pytest.raises(RuntimeError, match=match) as info:
        operator(**kwargs)
    assert "\n" not in str(info.value).strip(), "the reason must be one line"
    assert scene_state() == before
    assert sorted(g.name for g in bpy.data.node_groups) == groups


def interrupt_during(run, nth_job: int = 1, timeout: float = 120.0, when=None, delay: float = 0.0) -> tuple[object, list]:
    """Call ``run()`` while a thread presses Ctrl+C (KeyboardInterrupt in the main thread) ``delay`` seconds after the
    ``nth_job``-th job of the worker has reported a step (or ``when(job)`` holds); return run's result and what
    fired: [(job name, its progress)]."""
    import _thread
    import signal
    import threading
    import time

    from neural_fields.inr_blender.wire import client

    fired: list = []

    def interrupt():
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            backend = client.current_backend()
            job = backend._current if backend else None
            if job is not None and not job.done:
                if job.job_id not in seen:
                    seen.append(job.job_id)
                if len(seen) >= nth_job and (when(job) if when is not None else job.progress.get("step", 0) > 0):
                    fired.append((job.name, dict(job.progress)))
                    time.sleep(delay)
                    _thread.interrupt_main()
                    return
            time.sleep(0.02)

    # Ctrl+C reaches Python as KeyboardInterrupt only under Python's own SIGINT handler; something
    # earlier in a full run (not our code: none of it touches signals) can leave another one.
    handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        result = run()
    finally:
        thread.join()
        signal.signal(signal.SIGINT, handler)
    return result, fired


def refusals_of_an_sdf_operator(operator, label: str) -> None:
    """What every operator on a signed distance field refuses, each leaving the scene unchanged: nothing active,
    an active object that is not a field, a radiance field, a field whose checkpoint is missing."""
    refused(operator, "not a neural field")  # nothing active
    select_only(add_suzanne(subdivision_levels=0))
    refused(operator, "the active object is not a neural field")
    fake_field("NERF")
    refused(operator, f"'NERF Field' is a radiance field: {label} needs a signed distance field")
    fake_field("SDF")
    refused(operator, "checkpoint of 'SDF Field' not found")
