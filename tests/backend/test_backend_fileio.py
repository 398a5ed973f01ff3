"""Round trips and edge cases of the backend's mesh / point cloud readers and writers."""

import numpy as np
import pytest

from inr_blender.context import JobError
from inr_blender.fileio import read_geometry, write_mesh
from inr_blender.geometry.primitives import icosphere


@pytest.fixture
def sphere():
    v, f = icosphere(1.0, 1)
    return v, f, v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("ext", [".ply", ".obj"])
def test_mesh_round_trip(tmp_path, sphere, ext):
    v, f, n = sphere
    path = str(tmp_path / f"sub/mesh{ext}")
    write_mesh(path, v, f, n)
    back = read_geometry(path)
    np.testing.assert_allclose(back["vertices"], v, atol=1e-6)
    np.testing.assert_array_equal(back["faces"], f)
    np.testing.assert_allclose(back["vertex_normals"], n, atol=1e-5)


@pytest.mark.parametrize("ext", [".ply", ".obj"])
def test_point_cloud_round_trip(tmp_path, sphere, ext):
    v, _, n = sphere
    path = str(tmp_path / f"cloud{ext}")
    write_mesh(path, v, None, n)
    back = read_geometry(path)
    assert set(back) == {"points", "normals"}
    np.testing.assert_allclose(back["points"], v, atol=1e-6)
    np.testing.assert_allclose(back["normals"], n, atol=1e-5)


def test_ascii_ply_with_quads_and_extra_properties(tmp_path):
    text = """ply
format ascii 1.0
comment a unit square and a triangle
element vertex 5
property float x
property float y
property float z
property uchar red
element face 2
property list uchar int vertex_indices
end_header
0 0 0 255
1 0 0 255
1 1 0 255
0 1 0 255
2 2 2 0
4 0 1 2 3
3 1 4 2
"""
    path = tmp_path / "quad.ply"
    path.write_text(text)
    back = read_geometry(str(path))
    assert back["vertices"].shape == (5, 3)
    np.testing.assert_array_equal(back["faces"], [[0, 1, 2], [0, 2, 3], [1, 4, 2]])


@pytest.mark.parametrize("endian", ["<", ">"])
def test_binary_ply_endianness_and_mixed_polygons(tmp_path, endian):
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 2, 2]], dtype=endian + "f8")
    name = "binary_little_endian" if endian == "<" else "binary_big_endian"
    header = (
        f"ply\nformat {name} 1.0\nelement vertex 5\nproperty double x\nproperty double y\nproperty double z\n"
        "element face 2\nproperty list uchar uint vertex_indices\nend_header\n"
    )
    body = verts.tobytes()
    body += np.array([4], "u1").tobytes() + np.array([0, 1, 2, 3], endian + "u4").tobytes()
    body += np.array([3], "u1").tobytes() + np.array([1, 4, 2], endian + "u4").tobytes()
    path = tmp_path / "mixed.ply"
    path.write_bytes(header.encode() + body)
    back = read_geometry(str(path))
    np.testing.assert_allclose(back["vertices"], verts.astype(float))
    np.testing.assert_array_equal(back["faces"], [[0, 1, 2], [0, 2, 3], [1, 4, 2]])


def test_obj_polygons_negative_indices_and_texture_coords(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvn 0 0 1\nf -4/1/1 -3/1/1 -2/1/1 -1/1/1\n")
    back = read_geometry(str(path))
    np.testing.assert_array_equal(back["faces"], [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_allclose(back["vertex_normals"], np.tile([0.0, 0.0, 1.0], (4, 1)))


def test_npz_points_and_mesh(tmp_path, sphere):
    v, f, n = sphere
    path = tmp_path / "data.npz"
    np.savez(path, points=v, normals=n, vertices=v, faces=f)
    back = read_geometry(str(path))
    assert set(back) == {"points", "normals", "vertices", "faces"}
    np.testing.assert_array_equal(back["faces"], f)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(JobError, match="unknown format .stl"):
        read_geometry(str(tmp_path / "mesh.stl"))
    with pytest.raises(JobError, match="unknown format"):
        write_mesh(str(tmp_path / "mesh.fbx"), np.zeros((3, 3)))
    with pytest.raises(JobError, match="file not found"):
        read_geometry(str(tmp_path / "nothing.ply"))


def test_truncated_ply_is_refused(tmp_path, sphere):
    v, f, n = sphere
    path = tmp_path / "mesh.ply"
    write_mesh(str(path), v, f, n)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(JobError, match="truncated"):
        read_geometry(str(path))
