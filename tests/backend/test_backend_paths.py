"""A remote worker's sandbox (issue 18): jobs write only inside its working folder and read only there and in its data
folders, whatever path a client sends (``..``, absolute, ``~``, symbolic links out, transforms.json frames naming
images elsewhere), and their refusals read the same whether the path outside exists or not. Checkpoint paths that
are folders, or files that are not checkpoints, are refused with one line, sandbox or not.

The jobs run as the worker runs them: ``JOBS[name](params, arrays, JobContext(sandbox=...))``.
"""

import json
import os

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import read_checkpoint, save_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields import build_field
from inr_blender.fields.factory import field_config
from inr_blender.jobs import JOBS
from inr_blender.render.dataset import load_transforms
from inr_blender.sandbox import Sandbox

from nerf_scenes import write_sphere_dataset

WRITES_ONLY_INSIDE = "this worker writes only inside its working folder: give a path relative to it"
READS_ONLY_INSIDE = "this worker reads only inside its working folder and its data folders"
TINY_FIT = {"method": "igr", "iterations": 3, "width": 8, "depth": 2, "batch_size": 64, "device": "cpu", "convergence_tolerance": 0.0}
SMALL_HASHGRID = dict(levels=2, features_per_level=2, log2_table_size=8, base_resolution=4, finest_resolution=8, width=8, depth=1, init_radius=0.5)


def sphere_checkpoint(path) -> str:
    """A hash-grid SDF at its initialisation: the sphere |x| = 0.5."""
    torch.manual_seed(0)
    config = field_config("hashgrid", **SMALL_HASHGRID)
    return save_checkpoint({"config": config, "state_dict": build_field(config).state_dict(), "center": [0.0] * 3, "scale": 1.0}, str(path))


def cloud(count: int = 200) -> dict[str, np.ndarray]:
    d = np.random.default_rng(0).normal(size=(count, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return {"points": 0.5 * d, "normals": d}


@pytest.fixture
def site(tmp_path):
    """A worker's working folder, a data folder, and an outside folder holding a checkpoint, an image and a file."""
    work, data, outside = tmp_path / "work", tmp_path / "data", tmp_path / "outside"
    for folder in (work, data, outside):
        folder.mkdir()
    sphere_checkpoint(outside / "secret.pt")
    sphere_checkpoint(data / "shared.pt")
    (outside / "notes.txt").write_text("keep me")
    write_sphere_dataset(str(outside / "scene"), count=2, size=8, focal=10.0)
    ctx = JobContext(sandbox=Sandbox(str(work), (str(data),)))
    return work, data, outside, ctx


def refusal(name, params, arrays, ctx) -> str:
    with pytest.raises(JobError) as caught:
        JOBS[name](params, arrays, ctx)
    return str(caught.value)


def listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- writes ---------------------------------------------------------------------------------------------------------


def test_checkpoint_paths_that_leave_the_working_folder_are_refused_alike(site, tmp_path):
    work, _data, outside, ctx = site
    (work / "out").symlink_to(outside, target_is_directory=True)
    (work / "secret-link.pt").symlink_to(outside / "secret.pt")
    before = listing(tmp_path)
    cases = [
        "../outside/secret.pt",  # exists
        "../outside/missing.pt",  # does not
        "../outside/new/deeper/x.pt",  # would make folders
        str(outside / "secret.pt"),  # absolute, exists
        str(outside / "missing.pt"),  # absolute, does not
        "~/x.pt",
        "~",
        "out/secret.pt",  # a symbolic link to a folder outside
        "out/missing.pt",
        "secret-link.pt",  # a symbolic link to a file outside
        "sub/../../outside/secret.pt",
        "bad\0name.pt",
    ]
    for path in cases:
        message = refusal("fit_sdf", {**TINY_FIT, "checkpoint_path": path}, cloud(), ctx)
        assert message == WRITES_ONLY_INSIDE, path
    assert listing(tmp_path) == before  # nothing written, no folder made, anywhere
    assert read_checkpoint(str(outside / "secret.pt"))["scale"] == 1.0


def test_a_checkpoint_path_inside_is_written_there_and_replaces_only_a_checkpoint(site):
    work, _data, _outside, ctx = site
    result, _ = JOBS["fit_sdf"]({**TINY_FIT, "checkpoint_path": "fits/a.pt"}, cloud(), ctx)
    assert result["checkpoint_path"] == str(work / "fits" / "a.pt") and read_checkpoint(result["checkpoint_path"])["method"] == "igr"
    again, _ = JOBS["fit_sdf"]({**TINY_FIT, "checkpoint_path": str(work / "fits" / "a.pt"), "seed": 1}, cloud(), ctx)  # absolute inside
    assert again["checkpoint_path"] == result["checkpoint_path"]
    assert listing(work) == ["fits", "fits/a.pt"]  # no temporary file left


def test_existing_files_and_folders_are_not_checkpoints_to_write_over(site, tmp_path):
    work, _data, _outside, ctx = site
    (work / "notes.txt").write_text("keep me")
    (work / "mesh.ply").write_bytes(b"ply\nformat ascii 1.0\nend_header\n")
    (work / "folder.pt").mkdir()
    (work / "file").write_text("a file")
    for sandboxed in (ctx, JobContext()):  # the same rules for the CLI and a local worker, without a sandbox
        root = "" if sandboxed is ctx else str(work) + os.sep
        for name in ("notes.txt", "mesh.ply"):
            message = refusal("fit_sdf", {**TINY_FIT, "checkpoint_path": root + name}, cloud(), sandboxed)
            assert message.endswith("a file that is not a field checkpoint is there (choose another name)"), message
        message = refusal("fit_sdf", {**TINY_FIT, "checkpoint_path": root + "folder.pt"}, cloud(), sandboxed)
        assert message == f"cannot write the checkpoint to {work / 'folder.pt'}: it is a folder"
        message = refusal("fit_sdf", {**TINY_FIT, "checkpoint_path": root + "file/x.pt"}, cloud(), sandboxed)
        assert message.endswith(f"{work / 'file'} is not a folder")
    assert (work / "notes.txt").read_text() == "keep me" and (work / "mesh.ply").read_bytes().startswith(b"ply")
    assert (work / "folder.pt").is_dir() and not any((work / "folder.pt").iterdir())


def test_a_remote_clients_own_path_only_labels_the_bytes_sent_back(site, tmp_path):
    """Blender asks a remote worker for a checkpoint's bytes with its own path: nothing is written on the worker."""
    work, _data, _outside, ctx = site
    client_path = str(tmp_path / "client" / "field.pt")
    result, arrays = JOBS["fit_sdf"]({**TINY_FIT, "checkpoint_path": client_path, "return_checkpoint": True}, cloud(), ctx)
    assert result["checkpoint_path"] == client_path and arrays["checkpoint"].dtype == np.uint8
    assert read_checkpoint(arrays["checkpoint"])["method"] == "igr"
    assert not (tmp_path / "client").exists() and listing(work) == []


def test_reconstructs_field_output_is_sandboxed_too(site):
    work, _data, outside, ctx = site
    message = refusal("reconstruct_shape", {"checkpoint_path": "space.pt", "output_checkpoint_path": "../outside/x.pt"}, cloud(), ctx)
    assert message == WRITES_ONLY_INSIDE and not (outside / "x.pt").exists()


# -- reads ----------------------------------------------------------------------------------------------------------


def test_checkpoints_are_read_only_inside_the_working_and_data_folders(site):
    work, data, outside, ctx = site
    (work / "link.pt").symlink_to(outside / "secret.pt")
    (work / "dangling.pt").symlink_to(outside / "missing.pt")
    extract = {"resolution": 8, "device": "cpu"}
    for path in (
        "../outside/secret.pt",
        "../outside/missing.pt",
        str(outside / "secret.pt"),
        str(outside / "missing.pt"),
        "link.pt",
        "dangling.pt",
        "~/x.pt",
    ):
        assert refusal("extract_mesh", {**extract, "checkpoint_path": path}, {}, ctx) == READS_ONLY_INSIDE, path
    sphere_checkpoint(work / "mine.pt")
    for path in ("mine.pt", str(work / "mine.pt"), "../data/shared.pt", str(data / "shared.pt")):
        result, arrays = JOBS["extract_mesh"]({**extract, "checkpoint_path": path}, {}, ctx)
        assert result["num_vertices"] > 0 and np.abs(np.linalg.norm(arrays["vertices"], axis=1) - 0.5).max() < 0.1
    assert refusal("extract_mesh", {**extract, "checkpoint_path": "nothing.pt"}, {}, ctx) == f"checkpoint not found: {work / 'nothing.pt'}"


def test_every_job_that_reads_a_checkpoint_path_goes_through_the_sandbox(site):
    _work, _data, outside, ctx = site
    secret = str(outside / "secret.pt")
    mesh = {"vertices": np.eye(3), "faces": np.array([[0, 1, 2]])}
    cases = [
        ("sample_isopoints", {"checkpoint_path": secret}, {}),
        ("extract_skeleton", {"checkpoint_path": secret}, {}),
        ("evaluate_field", {"checkpoint_path": secret}, mesh),
        ("closest_points", {"checkpoint_path": secret}, {"points": np.zeros((1, 3))}),
        ("check_intersection", {"checkpoint_path": "../data/shared.pt", "other_checkpoint_path": secret}, {}),
        ("transfer_detail", {"checkpoint_path": "t.pt", "source_checkpoint": secret, "target_checkpoint": "../data/shared.pt"}, {}),
        ("transfer_detail", {"checkpoint_path": "t.pt", "source_checkpoint": "../data/shared.pt", "target_checkpoint": secret}, {}),
        ("interpolate_shapes", {"checkpoint_path": secret, "a": 0, "b": 1}, {}),
        ("render_nerf_view", {"checkpoint_path": secret, "width": 4, "height": 4, "intrinsics": [4.0, 4.0, 2.0, 2.0]}, {"c2w": np.eye(4)}),
        ("reconstruct_shape", {"checkpoint_path": secret}, {"points": np.zeros((1, 3))}),
    ]
    for name, params, arrays in cases:
        assert refusal(name, {**params, "device": "cpu"}, arrays, ctx) == READS_ONLY_INSIDE, name


def test_transforms_and_the_images_its_frames_name_stay_inside(site):
    work, data, outside, ctx = site
    write_sphere_dataset(str(data / "scene"), count=2, size=8, focal=10.0)
    views = load_transforms(str(data / "scene"), resolve=ctx.sandbox.input)  # inside: read
    assert views.images.shape == (2, 8, 8, 3)
    fit = {"checkpoint_path": "n.pt", "iterations": 1, "device": "cpu"}
    for path in ("../outside/scene", str(outside / "scene" / "transforms.json"), "../outside/nothing", "~/scene"):
        assert refusal("fit_nerf", {**fit, "transforms_path": path}, {}, ctx) == READS_ONLY_INSIDE, path
    (work / "scene-link").symlink_to(outside / "scene", target_is_directory=True)
    assert refusal("fit_nerf", {**fit, "transforms_path": "scene-link"}, {}, ctx) == READS_ONLY_INSIDE

    meta_path = data / "scene" / "transforms.json"
    meta = json.loads(meta_path.read_text())
    messages = {}
    for label, file_path in {
        "relative, exists": "../../outside/scene/r_0",
        "relative, missing": "../../outside/scene/r_9",
        "absolute, exists": str(outside / "scene" / "r_0.png"),
        "absolute, missing": str(outside / "scene" / "r_9.png"),
        "symlink out": "link_0",
    }.items():
        (data / "scene" / "link_0.png").unlink(missing_ok=True)
        (data / "scene" / "link_0.png").symlink_to(outside / "scene" / "r_0.png")
        meta["frames"][0]["file_path"] = file_path
        meta_path.write_text(json.dumps(meta))
        messages[label] = refusal("fit_nerf", {**fit, "transforms_path": "../data/scene"}, {}, ctx)
    assert set(messages.values()) == {f"transforms.json frame 0: {READS_ONLY_INSIDE}"}, messages
    assert all(str(outside) not in m for m in messages.values())
    assert not (work / "n.pt").exists()


def test_an_unconfined_worker_still_reads_anywhere(site):
    """The CLI and a local worker act for their user: no sandbox, any path."""
    _work, _data, outside, _ctx = site
    result, _ = JOBS["extract_mesh"]({"checkpoint_path": str(outside / "secret.pt"), "resolution": 8, "device": "cpu"}, {}, JobContext())
    assert result["num_vertices"] > 0
    assert load_transforms(str(outside / "scene")).images.shape[0] == 2
