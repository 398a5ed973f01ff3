"""Debris: the parts of an extracted surface that are not part of the input are dropped (geometry.components,
the extraction job's ``keep_debris``), and the Fast preset keeps thin parts and leaves holes empty, checked by
the topology of shapes with a thin tail and with a hole."""

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import read_checkpoint, save_checkpoint
from inr_blender.context import JobContext
from inr_blender.geometry.components import debris_tolerance, drop_debris, vertex_components
from inr_blender.geometry.primitives import icosphere
from inr_blender.geometry.sampling import sample_surface
from inr_blender.jobs import JOBS

from sdf_shapes import CAMEL, CAMEL_TAIL, capsules_cloud, torus_knot_cloud


def merged(*meshes):
    """One mesh (vertices, faces) of several."""
    vertices, faces, offset = [], [], 0
    for v, f in meshes:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices).astype(np.float32), np.concatenate(faces).astype(np.int32)


def euler_characteristic(vertices, faces):
    edges = np.unique(np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)
    return len(vertices) - len(edges) + len(faces)


def test_components_and_what_drop_debris_keeps():
    """A head, a small part of the input (an eye, 2% of the head's vertices), a blob away from the input and a
    speck within a point spacing of it: the blob and the speck go, the head and the eye stay."""
    head, eye = icosphere(0.5, 5), icosphere(0.12, 3, (0.0, -0.7, 0.0))
    blob, speck = icosphere(0.1, 3, (0.0, 0.75, 0.0)), icosphere(0.01, 0, (0.0, 0.0, 0.51))
    vertices, faces = merged(head, eye, blob, speck)
    count, labels = vertex_components(len(vertices), faces)
    assert count == 4 and np.bincount(labels).tolist() == [len(m[0]) for m in (head, eye, blob, speck)]
    points = np.concatenate([sample_surface(*head, 20_000, 0)[0], sample_surface(*eye, 2000, 1)[0]])
    tolerance = debris_tolerance(points, 128)
    normals = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    v, f, n, dropped = drop_debris(vertices, faces, normals, points, tolerance)
    assert dropped == 2 and len(v) == len(head[0]) + len(eye[0]) and len(f) == len(head[1]) + len(eye[1])
    assert np.array_equal(v, vertices[: len(v)]) and np.array_equal(f, faces[: len(f)]) and np.array_equal(n, normals[: len(v)])
    assert vertex_components(len(v), f)[0] == 2
    # Nothing near the points: the mesh stays whole rather than vanish.
    assert drop_debris(vertices, faces, normals, points + 5.0, tolerance)[3] == 0


@pytest.mark.slow  # a fit of 300 steps
def test_extraction_drops_what_the_input_does_not_hold_unless_kept(tmp_path):
    """A field fitted to two balls; the checkpoint's sample of the input then holds one of them only, so the
    other is debris to the extraction: dropped by default, kept with keep_debris and for a checkpoint written
    before the sample (no entry)."""
    a, b = icosphere(0.3, 3, (-0.45, 0.0, 0.0)), icosphere(0.3, 3, (0.45, 0.0, 0.0))
    path = str(tmp_path / "two.pt")
    params = {"method": "hashgrid", "iterations": 300, "levels": 8, "log2_table_size": 12, "finest_resolution": 128, "batch_size": 512}
    JOBS["fit_sdf"](
        {**params, "device": "cpu", "checkpoint_path": path, "num_samples": 20_000},
        dict(zip(("vertices", "faces"), merged(a, b), strict=True)),
        JobContext(),
    )
    ckpt = read_checkpoint(path)
    sample = ckpt["surface_sample"]
    assert sample.dtype == torch.float32 and sample.shape == (16_384, 3)

    def extract(**extra):
        result, mesh = JOBS["extract_mesh"]({"checkpoint_path": path, "resolution": 64, "space": "world", "device": "cpu", **extra}, {}, JobContext())
        return result["debris_removed"], vertex_components(len(mesh["vertices"]), mesh["faces"])[0], mesh["vertices"]

    everything = extract(keep_debris=True)[1]  # the two balls, and what else the short fit left
    assert everything >= 2 and extract()[:2] == (everything - 2, 2)
    ckpt["surface_sample"] = sample[sample[:, 0] < 0]  # local frame: ball a only
    save_checkpoint(ckpt, path)
    dropped, count, vertices = extract()
    assert (dropped, count) == (everything - 1, 1) and vertices[:, 0].max() < 0
    assert extract(keep_debris=True)[:2] == (0, everything)
    del ckpt["surface_sample"]
    save_checkpoint(ckpt, path)
    assert extract()[:2] == (0, everything)


def fit_fast(points, normals, path, iterations):
    """The Fast preset's network and terms on an oriented cloud, for ``iterations`` steps; its world-space mesh."""
    params = {"preset": "fast", "iterations": iterations, "convergence_tolerance": 0.0, "device": "cpu", "checkpoint_path": path}
    JOBS["fit_sdf"](params, {"points": points, "normals": normals}, JobContext())
    result, mesh = JOBS["extract_mesh"]({"checkpoint_path": path, "resolution": 160, "space": "world", "device": "cpu"}, {}, JobContext())
    return result, mesh["vertices"], mesh["faces"]


def one_sided_distance(points, vertices):
    from scipy.spatial import cKDTree

    return cKDTree(vertices).query(points)[0]


@pytest.mark.slow  # ~30 s on 2 cores when alone
def test_fast_preset_keeps_a_camels_tail(tmp_path):
    """Body, neck, head, four legs and a tail of radius 0.02 (the cloud spans 1.6): one closed surface of genus 0
    whose tail reaches its tip (measured: 1 component, Euler characteristic 2, the tail tip's 341 points within
    0.0086 of the surface at the 95th percentile)."""
    points, normals = capsules_cloud(CAMEL, 30_000)
    result, vertices, faces = fit_fast(points, normals, str(tmp_path / "camel.pt"), 300)
    assert vertex_components(len(vertices), faces)[0] == 1
    assert euler_characteristic(vertices, faces) == 2
    a, b, radius = np.asarray(CAMEL_TAIL[0]), np.asarray(CAMEL_TAIL[1]), CAMEL_TAIL[2]
    tail = points[np.linalg.norm(np.cross(points - a, b - a), axis=1) / np.linalg.norm(b - a) < 1.5 * radius]
    tail = tail[(tail - a) @ (b - a) > 0.5 * (b - a) @ (b - a)]  # the tail's outer half, to the tip
    assert len(tail) > 50 and np.percentile(one_sided_distance(tail, vertices), 95) < radius


@pytest.mark.slow  # 32 s measured on 2 cores
def test_fast_preset_leaves_a_torus_knots_holes_empty(tmp_path):
    """A tube around a (2, 3) torus knot: one surface of genus 1 (Euler characteristic 0), nothing floating in
    its holes, and every vertex on the tube."""
    points, normals, curve = torus_knot_cloud(30_000)
    result, vertices, faces = fit_fast(points, normals, str(tmp_path / "knot.pt"), 300)
    assert vertex_components(len(vertices), faces)[0] == 1
    assert euler_characteristic(vertices, faces) == 0
    assert one_sided_distance(vertices, points).max() < 0.05
    assert np.percentile(one_sided_distance(points, vertices), 99) < 0.02
