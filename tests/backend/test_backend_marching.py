"""The torch marching cubes (geometry/marching.py): its generated table, its meshes against scikit-image's, and
sparse extraction with it."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from inr_blender.context import JobContext, JobError
from inr_blender.geometry.extraction import estimate_torch_march_bytes, extract_mesh, march_with_fallback, resolve_dense_marcher
from inr_blender.geometry.marching import CORNERS, EDGES, case_table, case_triangles, crossed_grid_blocks, edge_faces, march_blocks, march_grid
from inr_blender.geometry.sparse_extraction import extract_mesh_sparse

from test_backend_sparse_extraction import Spheres, Torus, check_welded_and_closed, mlp

CPU = torch.device("cpu")


def grid_values(n: int, sdf) -> torch.Tensor:
    """An (n, n, n) float32 grid of ``sdf`` over [-1, 1]^3, indexed [x, y, z]."""
    axis = torch.linspace(-1.0, 1.0, n)
    return sdf(torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)).reshape(n, n, n).float()


def noise(n: int = 32, seed: int = 0) -> torch.Tensor:
    """A smooth random field (a coarse random grid, upsampled), forced above the level on the grid's border so that
    the surface is closed: many cells with two diagonal corners above (ambiguous faces)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn((1, 1, 11, 11, 11), generator=generator)
    values = torch.nn.functional.interpolate(coarse, size=(n, n, n), mode="trilinear", align_corners=True)[0, 0]
    values[[0, -1]], values[:, [0, -1]], values[:, :, [0, -1]] = 1.0, 1.0, 1.0
    return values


SPHERE = Spheres([[0.03, -0.02, 0.01]], [0.6])
TORUS = Torus()
TWO_SPHERES = Spheres([[-0.4, 0.0, 0.1], [0.45, 0.1, -0.05]], [0.35, 0.3])


def assert_same_points(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    """``a`` and ``b`` hold the same points, to ``atol``: as many, and each one's nearest in the other that close,
    one to one."""
    assert a.shape == b.shape
    distance, nearest = cKDTree(b).query(a)
    assert distance.max() <= atol
    assert len(np.unique(nearest)) == len(b)


def edges_of(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The undirected edges of ``faces`` and how many faces hold each."""
    return np.unique(np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0, return_counts=True)


def test_the_generated_table():
    count, table = case_table()
    assert count[0] == 0 and count[255] == 0
    assert table.shape[1:] == (5, 3)  # at most 5 triangles a cell, as in the classic table
    for case in range(256):
        above = (case >> np.arange(8)) & 1
        crossed = {e for e in range(12) if above[EDGES[e, 0]] != above[EDGES[e, 1]]}
        used = table[case, : count[case]]
        assert (table[case, count[case] :] == -1).all()
        assert set(used.ravel().tolist()) == crossed  # every vertex on a crossed edge, every crossed edge used
        assert all(len(set(t)) == 3 for t in used.tolist())
        # A triangle edge within the cell is held by two of its triangles and joins edges on no common face; one on
        # a cube face (a segment, which the neighbouring cell shares) by one. Never a diagonal across a face, which
        # the neighbour could draw too.
        pairs, times = edges_of(used)
        on_face = np.array([bool(edge_faces()[a] & edge_faces()[b]) for a, b in pairs.tolist()], dtype=bool)
        np.testing.assert_array_equal(times, np.where(on_face, 1, 2))
        # The complement is the same surface wound the other way, where no face is ambiguous; on an ambiguous face
        # the fixed rule (cut the above corners off) splits the complement the other way, so it matches the
        # complement generated with the opposite rule.
        ambiguous = has_ambiguous_face(case)
        reversed_complement = {t[::-1] for t in case_triangles(255 - case, cut_above=ambiguous is False)}
        assert {_rotate(t) for t in used.tolist()} == {_rotate(t) for t in reversed_complement}
        if not ambiguous:
            assert count[case] == count[255 - case]


def has_ambiguous_face(case: int) -> bool:
    """Whether a face of the cube has its above corners on a diagonal (4 crossed edges)."""
    above = (case >> np.arange(8)) & 1
    rings = ([0, 2, 6, 4], [1, 3, 7, 5], [0, 1, 5, 4], [2, 3, 7, 6], [0, 1, 3, 2], [4, 5, 7, 6])
    return any(sum(above[a] != above[b] for a, b in zip(ring, ring[1:] + ring[:1])) == 4 for ring in rings)


def _rotate(t) -> tuple:
    """A triangle's indices rotated to start at the smallest (the same triangle, the same winding)."""
    t = tuple(t)
    i = t.index(min(t))
    return t[i:] + t[:i]


def test_winding_points_to_larger_values():
    """One corner above: the triangle's normal points at that corner (scikit-image's convention too)."""
    _, table = case_table()
    for corner in range(8):
        tri = table[1 << corner, 0]
        mid = CORNERS[EDGES[tri]].mean(axis=1)  # the crossed edges' midpoints
        normal = np.cross(mid[1] - mid[0], mid[2] - mid[0])
        assert np.dot(normal, CORNERS[corner] - mid.mean(axis=0)) > 0
    values = grid_values(24, SPHERE)
    verts, faces, _, _ = marching_cubes(values.numpy(), 0.0)
    tri = verts[faces]
    outward = np.einsum("ij,ij->i", np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), tri.mean(axis=1) - 11.5)
    assert (outward > 0).all()  # scikit-image's faces point toward larger values as well


@pytest.mark.parametrize(
    "values, euler",
    [
        (grid_values(40, SPHERE), 2),
        (grid_values(48, TORUS), 0),
        (grid_values(40, TWO_SPHERES), 4),
        (grid_values(41, Spheres([[0.0, 0.0, 0.0]], [0.5])), 2),  # exactly the level at 6 grid points
        (noise(), None),
    ],
    ids=["sphere", "torus", "two-spheres", "sphere-on-grid", "noise"],
)
def test_against_scikit_image(values, euler):
    if euler is None:  # the noise: cells with an ambiguous face are there to be checked
        a = (values > 0).numpy().astype(np.int64)
        cases = sum(a[dx : dx + 31, dy : dy + 31, dz : dz + 31] << c for c, (dx, dy, dz) in enumerate(CORNERS.tolist()))
        assert sum(has_ambiguous_face(c) for c in cases.ravel().tolist()) >= 20
    verts, faces = march_grid(values, 0.0)
    assert verts.dtype == torch.float32 and faces.dtype == torch.int64
    v, f = verts.numpy(), faces.numpy()
    check_welded_and_closed(v, f)  # one vertex per position, no degenerate face, watertight
    if euler is not None:
        assert len(v) - len(edges_of(f)[0]) + len(f) == euler
    sv, sf, _, _ = marching_cubes(values.numpy(), 0.0)
    sv = np.unique(sv, axis=0)  # scikit-image repeats a vertex on a grid point where the field equals the level
    # Its Lewiner cases add a vertex inside some cells with an ambiguous face (off the grid edges): not ours.
    on_edges = (np.abs(sv - np.round(sv)) > 1e-6).sum(axis=1) <= 1
    assert (~on_edges).sum() <= 0.001 * len(sv)
    assert_same_points(v, sv[on_edges], 1e-5)
    assert abs(len(f) - len(sf)) <= 0.03 * len(sf)


def test_random_values_make_every_configuration_and_no_crack():
    """Independent random values (above the level on the border): all 256 configurations occur, many times each
    with ambiguous faces, and the mesh is still closed, with scikit-image's vertices on the grid edges."""
    for seed in range(2):
        values = torch.randn((24, 24, 24), generator=torch.Generator().manual_seed(seed))
        values[[0, -1]], values[:, [0, -1]], values[:, :, [0, -1]] = 1.0, 1.0, 1.0
        a = (values > 0).numpy().astype(np.int64)
        cases = sum(a[dx : dx + 23, dy : dy + 23, dz : dz + 23] << c for c, (dx, dy, dz) in enumerate(CORNERS.tolist()))
        assert len(np.unique(cases)) == 256
        verts, faces = march_grid(values, 0.0)
        check_welded_and_closed(verts.numpy(), faces.numpy())
        sv = np.unique(marching_cubes(values.numpy(), 0.0)[0], axis=0)
        assert_same_points(verts.numpy(), sv[(np.abs(sv - np.round(sv)) > 1e-6).sum(axis=1) <= 1], 1e-5)


@pytest.mark.parametrize("n, block", [(29, 8), (33, 8), (10, 3), (9, 8), (2, 1), (41, 13)])
def test_crossed_blocks_of_a_dense_grid(n, block):
    """The blocks' extrema, by views and reductions, against looking at each block's (B+1)^3 points."""
    generator = torch.Generator().manual_seed(n)
    for shift in (0.5, 1.5):
        values = torch.randn((n, n, n), generator=generator) + shift
        above = values > 0.0
        m = n - 1
        starts = range(0, m, block)
        expected = {
            (i, j, k)
            for i in starts
            for j in starts
            for k in starts
            if 0
            < int(above[i : i + block + 1, j : j + block + 1, k : k + block + 1].sum())
            < above[i : i + block + 1, j : j + block + 1, k : k + block + 1].numel()
        }
        assert {tuple(o) for o in crossed_grid_blocks(values, block, 0.0).tolist()} == expected


def test_a_dense_grid_marches_the_same_in_any_blocks():
    """march_grid marches only the blocks the surface crosses: any block size gives the same mesh, clipped blocks
    at the far faces included."""
    for values, sparse in ((noise(29, seed=3), False), (grid_values(29, TWO_SPHERES), True)):
        whole_v, whole_f = march_grid(values, 0.0, block=28)  # one block: the grid
        assert len(crossed_grid_blocks(values, 28, 0.0)) == 1
        for block in (1, 3, 8, 13):
            crossed = crossed_grid_blocks(values, block, 0.0)
            per_axis = -(-28 // block)
            assert 0 < len(crossed) <= per_axis**3
            if sparse:  # most blocks lie wholly on one side of the two spheres
                assert len(crossed) < 0.6 * per_axis**3
            verts, faces = march_grid(values, 0.0, block=block)
            check_welded_and_closed(verts.numpy(), faces.numpy())
            assert_same_points(verts.numpy(), whole_v.numpy(), 1e-6)
            assert len(faces) == len(whole_f)


@pytest.mark.parametrize("shape", [SPHERE, TORUS, TWO_SPHERES], ids=["sphere", "torus", "two-spheres"])
def test_face_normals_follow_the_gradient(shape):
    n = 40
    verts, faces = march_grid(grid_values(n, shape), 0.0)
    local = verts * (2.0 / (n - 1)) - 1.0
    tri = local[faces]
    normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    centre = tri.mean(dim=1).requires_grad_(True)
    (gradient,) = torch.autograd.grad(shape(centre).sum(), centre)
    cosine = (normal * gradient).sum(dim=1) / (normal.norm(dim=1) * gradient.norm(dim=1))
    assert (cosine > 0.5).all() and cosine.mean() > 0.99


def blocks_of(values: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid cut into blocks of ``block`` cells per axis, clipped ones repeating their last plane."""
    m = values.shape[0] - 1
    starts = torch.arange(0, m, block)
    origins = torch.cartesian_prod(starts, starts, starts)
    local = torch.arange(block + 1)
    i, j, k = (torch.clamp_max(origins[:, a, None] + local, m) for a in range(3))
    return values[i[:, :, None, None], j[:, None, :, None], k[:, None, None, :]], origins


@pytest.mark.parametrize("block", [3, 7])
def test_blocks_weld_into_the_grid_mesh(block):
    """Blocks (40 cells: the last block clipped) give the whole grid's mesh: their seams weld, the clipped cells make
    nothing, and ``scale``/``offset`` map the vertices."""
    for values in (noise(41, seed=1), grid_values(41, Spheres([[0.0, 0.0, 0.0]], [0.5]))):  # the second: on-grid
        whole = march_blocks(values[None], torch.zeros((1, 3), dtype=torch.int64), 40, 40, 0.0, scale=2.0 / 40, offset=-1.0)
        verts, faces = (x.numpy() for x in whole)
        parts, origins = blocks_of(values, block)
        bv, bf = (x.numpy() for x in march_blocks(parts, origins, block, 40, 0.0, scale=2.0 / 40, offset=-1.0))
        check_welded_and_closed(bv, bf)
        assert len(bf) == len(faces)
        assert_same_points(bv, verts, 0.0)  # the same arithmetic: the very same floats
        # The same triangles: each face of the blocks' mesh, by its vertices' positions, is one of the grid mesh's.
        match = cKDTree(verts).query(bv)[1]
        assert {_rotate(t) for t in match[bf].tolist()} == {_rotate(t) for t in faces.tolist()}
        # In index coordinates, vertices that coincide only once scaled stay apart (on the sphere, beside the
        # points where its field is exactly 0): the welding is at the returned precision.
        index = march_grid(values, 0.0)[0].numpy() * (2.0 / 40) - 1.0
        assert len(index) >= len(verts) and cKDTree(verts).query(index)[0].max() < 1e-6


def test_nothing_to_march():
    for values in (torch.ones(1, 3, 3, 3), -torch.ones(1, 3, 3, 3), torch.zeros(0, 3, 3, 3)):
        verts, faces = march_blocks(values, torch.zeros((len(values), 3), dtype=torch.int64), 2, 2, 0.0)
        assert verts.shape == (0, 3) and faces.shape == (0, 3)
    # The field touches the level at one grid point only: every triangle is degenerate.
    values = torch.ones(1, 3, 3, 3)
    values[0, 1, 1, 1] = 0.0
    verts, faces = march_blocks(values, torch.zeros((1, 3), dtype=torch.int64), 2, 2, 0.0)
    assert verts.shape == (0, 3) and faces.shape == (0, 3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, resolution",
    [(mlp, 96), (lambda: Spheres([[0.0, 0.0, 0.0]], [0.5]), 129), (lambda: Torus(gain=4.0), 77)],
    ids=["mlp", "sphere-on-grid", "torus-gain-4-clipped"],
)
def test_sparse_extraction_with_either_marcher(make, resolution):
    field = make()
    vs, fs, ns, ss = extract_mesh_sparse(field, resolution, CPU, JobContext(), marcher="skimage")
    vt, ft, nt, st = extract_mesh_sparse(field, resolution, CPU, JobContext(), marcher="torch")
    assert ss["marcher"] == "skimage" and st["marcher"] == "torch"
    assert vt.dtype == np.float32 and ft.dtype == np.int32 and nt.dtype == np.float32
    assert np.abs(vt).max() <= 1.0
    check_welded_and_closed(vs, fs)
    check_welded_and_closed(vt, ft)
    assert len(vt) == len(vs) and abs(len(ft) - len(fs)) <= 0.01 * len(fs)
    assert_same_points(vt, vs, 1e-6)  # the same vertices
    match = cKDTree(vs).query(vt)[1]
    np.testing.assert_allclose(nt, ns[match], atol=1e-4)  # the field's gradient there
    # Wound outward like the gradient normals: each face's normal agrees with its vertices' normals.
    tri = vt[ft]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (np.einsum("ij,ij->i", cross, nt[ft].sum(axis=1)) > 0).mean() > 0.999
    # A preview's grid normals (no gradient pass): the faces' area-weighted normals, pointing outward too.
    vp, fp, np_, _ = extract_mesh_sparse(field, resolution, CPU, JobContext(), gradient_normals=False, marcher="torch")
    np.testing.assert_array_equal(vp, vt)
    np.testing.assert_array_equal(fp, ft)
    assert (np.einsum("ij,ij->i", np_, nt) > 0.9).mean() > 0.99


@pytest.mark.parametrize("make, resolution", [(mlp, 64), (Torus, 57)], ids=["mlp", "torus"])
def test_dense_extraction_with_either_marcher(make, resolution):
    field = make()
    vs, fs, ns = extract_mesh(field, resolution, CPU, JobContext(), marcher="skimage")
    vt, ft, nt = extract_mesh(field, resolution, CPU, JobContext(), marcher="torch")
    assert vt.dtype == np.float32 and ft.dtype == np.int32 and nt.dtype == np.float32
    check_welded_and_closed(vt, ft)
    assert len(vt) == len(vs) and abs(len(ft) - len(fs)) <= 0.01 * len(fs)
    assert_same_points(vt, vs, 1e-6)
    np.testing.assert_allclose(nt, ns[cKDTree(vs).query(vt)[1]], atol=1e-4)
    tri = vt[ft]  # wound outward, like the gradient
    assert (np.einsum("ij,ij->i", np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), nt[ft].sum(axis=1)) > 0).mean() > 0.999
    # The sparse path's torch mesh is this one: the same grid, marcher and weld.
    vp, fp, _, _ = extract_mesh_sparse(field, resolution, CPU, JobContext(), marcher="torch")
    assert_same_points(vp, vt, 1e-6)
    assert len(fp) == len(ft)


def test_dense_auto_marcher_follows_the_memory():
    assert resolve_dense_marcher("auto", 64, CPU) == "torch"
    assert resolve_dense_marcher("skimage", 64, CPU) == "skimage"
    assert estimate_torch_march_bytes(100_000) > 10**15
    assert resolve_dense_marcher("auto", 100_000, CPU) == "skimage"  # its arrays would not fit: scikit-image's
    with pytest.raises(JobError, match=r"resolution 100000 needs about .* GB, the backend machine has .* GB available"):
        extract_mesh(SPHERE, 100_000, CPU, JobContext(), marcher="torch")


def test_auto_falls_back_to_scikit_image_where_the_device_lacks_an_op():
    """torch raises NotImplementedError for an op a device lacks (as MPS does under some versions)."""

    def run(name: str) -> str:
        if name == "torch":
            raise NotImplementedError("The operator 'aten::_unique2' is not currently implemented for the MPS device")
        return f"{name} mesh"

    with pytest.warns(RuntimeWarning, match="the torch marcher cannot run on this device .*; scikit-image's runs instead"):
        assert march_with_fallback("auto", "torch", run) == ("skimage mesh", "skimage")
    with pytest.raises(JobError, match="the torch marcher cannot run on this device .*; choose the marcher skimage"):
        march_with_fallback("torch", "torch", run)
    assert march_with_fallback("auto", "skimage", run) == ("skimage mesh", "skimage")


def test_unknown_marcher_is_refused():
    for extract in (extract_mesh, extract_mesh_sparse):
        with pytest.raises(JobError, match="marcher must be one of auto, torch, skimage"):
            extract(Spheres([[0.0, 0.0, 0.0]], [0.5]), 16, CPU, JobContext(), marcher="vtk")
