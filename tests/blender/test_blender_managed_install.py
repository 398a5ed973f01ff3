"""The managed backend, really installed: the set-up Set up Backend runs, then a fit through a worker of it.

Drives install.setup_environment as the operator does (online access granted through its ``online_access``
parameter, as the operator passes bpy.app.online_access), into a temporary user folder. Torch is pinned to the
release this checkout is tested with, so that the test installs a known build in minutes. Where the index the plan
names (download.pytorch.org) cannot be reached, pip's own configuration (PyPI, or the mirror pip.conf names) is
used; where no index answers, the test is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import bpy

from conftest import add_point_cloud, prefs, set_local_backend, sphere_points


def _pip_reaches(index_args: list[str]) -> tuple[bool, str]:
    """Whether pip can see a torch release through these index options (a dry look-up, no download)."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", "torch", "--retries", "0", "--timeout", "20", *index_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    return proc.returncode == 0, (proc.stderr.strip().splitlines() or [""])[-1]


@pytest.mark.slow
def test_set_up_backend_installs_a_working_environment_and_fits_through_it(addon, tmp_path):
    from neural_fields.inr_blender import install
    from neural_fields.inr_blender.wire.client import shutdown_backend

    torch_version = __import__("torch").__version__.split("+")[0]
    plan = install.plan_install(install.detect(), "CPU", torch_version=torch_version)  # CI has no GPU; the CPU build
    assert plan.torch_requirement == f"torch=={torch_version}" and "CPU" in plan.explanation
    if plan.index_url:
        try:
            install.check_index(plan.index_url, timeout=10)
        except install.SetupError as exc:
            print(f"{exc}: using pip's own index instead")
            plan = install.Plan(**{**plan.__dict__, "index_url": None, "explanation": "the CPU build from pip's own index"})
    reachable, why = _pip_reaches(["--index-url", plan.index_url] if plan.index_url else [])
    if not reachable:
        pytest.skip(f"pip cannot reach a package index from here: {why}")

    venv = tmp_path / "user" / "backend-venv"
    seen: list[str] = []
    started = time.monotonic()
    python = install.setup_environment(
        str(venv), plan, online_access=True, on_progress=lambda p: seen.append(p.message), log_path=str(tmp_path / "setup.log")
    )
    print(f"set-up took {time.monotonic() - started:.0f} s")
    assert python == install.venv_python(str(venv)) and os.path.isfile(python)
    assert sorted(p.name for p in venv.parent.iterdir()) == ["backend-venv"]  # no partial folder left
    assert any(m.startswith(("Collecting torch", "Processing")) and "torch" in m for m in seen) and seen[-1].startswith(
        f"installed torch {torch_version}"
    )

    # a worker started from the new environment fits a small field through the operator
    bpy.ops.wm.read_homefile(use_empty=True)
    set_local_backend(python)
    try:
        assert bpy.ops.inr.check_backend() == {"FINISHED"}
        state = bpy.context.window_manager.inr_backend
        assert state.torch_version.startswith(torch_version) and "steps/s" in state.status
        pts, nrm = sphere_points(2000, radius=0.5)
        add_point_cloud(pts, nrm)
        assert bpy.ops.inr.fit_sdf(method="IGR", iterations=30, width=16, depth=2, batch_size=256) == {"FINISHED"}
        field = bpy.context.active_object
        assert field.inr_field.is_field and len(field.inr_field.loss_history) > 0
        assert prefs().python_path == python
    finally:
        shutdown_backend()
        set_local_backend()
