"""The neural-skeleton paper's field figure: |grad u| and |grad |grad u|| on a slice, for IGR, SIREN and TV.

Fits IGR, SIREN and the neural skeleton (each with the extension's defaults: 1000 steps of IGR 4x256 as the
Fit SDF operator sends, SIREN's and the neural skeleton's method defaults) to 100k points with normals
sampled on a mesh of ``../shared/data/meshes`` (fertility by default), and shows on the slice through the
middle of the shape's thinnest axis:

- |grad u|: 1 for a true distance, with a minimum (a crease of the true distance) on the medial axis;
- |grad |grad u||, the quantity the TV term penalises (log scale);

beside the same for the true distance to the surface (finite differences of the distance to 200k surface
samples). The numbers: the mean of | |grad u| - 1 | inside and outside the shape at least 5% of the
half-extent away from the surface (the eikonal error away from the data), and how far the slice's
gradient-norm minima (|grad u| < 0.5 inside) lie from the true medial axis's (the same on the true distance),
as a Chamfer distance in % of the half-extent. Writes ``bench/results/skeleton_field.md`` and
``bench/results/skeleton/field_slices.png``.

    .venv-bench/bin/python bench/skeleton_field.py [--shape PATH] [--resolution 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from scipy.spatial import cKDTree

from common import REPO, append_lines, write_table
from inr_blender.checkpoint import load_checkpoint
from inr_blender.context import JobContext
from inr_blender.fileio import read_geometry
from inr_blender.fitting.losses import gradient_norm_tv
from inr_blender.geometry.sampling import DATA_EXTENT, normalization, sample_surface, to_local
from inr_blender.jobs import JOBS

RESULTS = os.path.join(REPO, "bench", "results")
METHODS = {
    "IGR": {"method": "igr", "iterations": 1000, "width": 256, "depth": 4, "batch_size": 2048, "convergence_tolerance": 0.0},
    "SIREN": {"method": "siren", "iterations": 1000, "convergence_tolerance": 0.0},
    "neural skeleton (TV)": {"method": "neural_skeleton"},
}
RIDGE = 0.5  # |grad u| below this, inside, marks the gradient-norm minima


def slice_grid(axis: int, resolution: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Points of the plane {x_axis = 0} over [-1, 1]^2 in the local frame, (R*R, 3)."""
    a, b = [i for i in range(3) if i != axis]
    t = np.linspace(-1.0, 1.0, resolution)
    u, v = np.meshgrid(t, t, indexing="ij")
    points = np.zeros((resolution * resolution, 3))
    points[:, a], points[:, b] = u.ravel(), v.ravel()
    return points, (a, b)


def field_maps(field: torch.nn.Module, points: np.ndarray, resolution: int) -> tuple[np.ndarray, ...]:
    values, norms, tvs = [], [], []
    for start in range(0, len(points), 8192):
        x = torch.as_tensor(points[start : start + 8192], dtype=torch.float32)
        u, norm, tv = gradient_norm_tv(field, x)
        values.append(u.detach().numpy()), norms.append(norm.detach().numpy()), tvs.append(tv.detach().numpy())
    shape = (resolution, resolution)
    return tuple(np.concatenate(a).reshape(shape) for a in (values, norms, tvs))


def true_maps(surface: np.ndarray, normals: np.ndarray, points: np.ndarray, axis: int, resolution: int) -> tuple[np.ndarray, ...]:
    """Signed distance to the samples (sign from the nearest normal), its gradient norm and that norm's gradient,
    by central differences of one grid step: in the slice, and across it from two more slices one step away."""
    tree = cKDTree(surface)
    h = 2.0 / (resolution - 1)

    def signed(q: np.ndarray) -> np.ndarray:
        dist, idx = tree.query(q, workers=-1)
        sign = np.sign(np.einsum("ij,ij->i", q - surface[idx], normals[idx]))
        return (dist * np.where(sign == 0, 1, sign)).reshape(resolution, resolution)

    def gradient(q: np.ndarray, f) -> tuple[np.ndarray, np.ndarray]:
        step = np.zeros(3)
        step[axis] = h
        d = f(q)
        gu, gv = np.gradient(d, h)
        across = (f(q + step) - f(q - step)) / (2 * h)
        return d, np.sqrt(gu**2 + gv**2 + across**2)

    d, norm = gradient(points, signed)
    _, tv = gradient(points, lambda q: gradient(q, signed)[1])
    return d, norm, tv


def ridge_points(values: np.ndarray, norms: np.ndarray, points2d: np.ndarray) -> np.ndarray:
    mask = (values.ravel() < 0) & (norms.ravel() < RIDGE)
    return points2d[mask]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default=os.path.join(REPO, "..", "shared", "data", "meshes", "fertility.off"))
    parser.add_argument("--resolution", type=int, default=200)
    args = parser.parse_args()
    mesh = read_geometry(args.shape)
    points, normals = sample_surface(mesh["vertices"], mesh["faces"], 100_000, 0)
    center, scale = normalization(points)
    local = to_local(points, center, scale)
    extent = local.max(axis=0) - local.min(axis=0)
    axis = int(np.argmin(extent))
    grid, (a, b) = slice_grid(axis, args.resolution)
    grid[:, axis] = 0.5 * (local[:, axis].max() + local[:, axis].min())
    dense, dense_normals = sample_surface(mesh["vertices"], mesh["faces"], 200_000, 1)
    maps = {"true distance": true_maps(to_local(dense, center, scale), dense_normals, grid, axis, args.resolution)}
    seconds = {"true distance": 0.0}
    for name, params in METHODS.items():
        print(f"fitting {name}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "field.pt")
            started = time.perf_counter()
            JOBS["fit_sdf"]({**params, "checkpoint_path": path, "device": "cpu"}, {"points": points, "normals": normals}, JobContext())
            seconds[name] = time.perf_counter() - started
            field, _ = load_checkpoint(path)
        maps[name] = field_maps(field, grid, args.resolution)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    points2d = grid[:, [a, b]]
    truth_ridge = ridge_points(*maps["true distance"][:2], points2d)
    true_values = maps["true distance"][0]
    away = np.abs(true_values) >= 0.05 * DATA_EXTENT
    fig, axes = plt.subplots(len(maps), 2, figsize=(8, 4 * len(maps)))
    rows = []
    for r, (name, (values, norms, tvs)) in enumerate(maps.items()):
        extent_box = [-1, 1, -1, 1]
        im = axes[r, 0].imshow(norms.T, origin="lower", extent=extent_box, cmap="coolwarm", vmin=0, vmax=2)
        fig.colorbar(im, ax=axes[r, 0], fraction=0.046)
        im = axes[r, 1].imshow(np.clip(tvs, 1e-2, None).T, origin="lower", extent=extent_box, cmap="magma", norm=LogNorm(1e-2, 1e3))
        fig.colorbar(im, ax=axes[r, 1], fraction=0.046)
        for c in range(2):
            axes[r, c].contour(
                np.linspace(-1, 1, args.resolution), np.linspace(-1, 1, args.resolution), values.T, levels=[0], colors="k", linewidths=0.8
            )
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name)
        inside, outside = away & (true_values < 0), away & (true_values > 0)
        ridge = ridge_points(values, norms, points2d)
        if len(ridge) and len(truth_ridge):
            d_ab = cKDTree(ridge).query(truth_ridge)[0].mean()
            d_ba = cKDTree(truth_ridge).query(ridge)[0].mean()
            chamfer = f"{50.0 * (d_ab + d_ba) / DATA_EXTENT:.2f}%"
        else:
            chamfer = "no minima"
        rows.append(
            [
                name,
                f"{np.abs(norms[inside] - 1).mean():.3f}",
                f"{np.abs(norms[outside] - 1).mean():.3f}",
                f"{np.median(tvs[away]):.3g}",
                chamfer,
                f"{seconds[name]:.0f} s",
            ]
        )
    axes[0, 0].set_title("‖∇u‖  (0 to 2; black: u = 0)")
    axes[0, 1].set_title("‖∇‖∇u‖‖  (log)")
    fig.tight_layout()
    os.makedirs(os.path.join(RESULTS, "skeleton"), exist_ok=True)
    fig.savefig(os.path.join(RESULTS, "skeleton", "field_slices.png"), dpi=90)
    md = os.path.join(RESULTS, "skeleton_field.md")
    write_table(
        md,
        f"Gradient norm away from the surface: {os.path.basename(args.shape)}, slice across its thinnest axis",
        ["field", "mean of abs(‖∇u‖ − 1), inside", "same, outside", "median ‖∇‖∇u‖‖", "minima to the medial axis (Chamfer)", "fit"],
        rows,
    )
    append_lines(
        md,
        [
            "Inside and outside count slice points at least 5% of the half-extent from the surface; the minima are the",
            f"inside points with ‖∇u‖ < {RIDGE}, compared with the same on the true distance (Chamfer, % of the half-extent).",
            "",
            "![slices](skeleton/field_slices.png)",
            "",
        ],
    )


if __name__ == "__main__":
    main()
