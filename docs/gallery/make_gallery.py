"""Make the README's gallery: one modest PNG per picture in ``docs/gallery/``, from the project's own tools.

Each picture is a step that runs alone (``--only NAME``) in a temporary folder and writes ``docs/gallery/NAME.png``
(at most ``--width`` pixels wide). A step regenerates its picture with the command line (``python -m inr_blender``)
and a Cycles render (``bench/render_row.py``, ``docs/gallery/render_points.py``, each in its own process), or,
with ``--reuse NAME``, shrinks the picture its benchmark committed under ``bench/results/``:

- ``sdf``: ``bench/sdf_vs_poisson.py`` on armadillo at a fifth of the steps (needs open3d: ``make bench-venv``,
  and ``--bench-python .venv-bench/bin/python``); reused: ``bench/results/sdf_vs_poisson/armadillo.png``.
- ``nerf``: the fast radiance field fitted to lego at 200x200 for 300 steps (``--nerf-iterations``), held-out view 0 beside
  its ground truth, with that view's PSNR.
- ``skeleton``: teddy, its neural skeleton (the Skeleton preset) and the medial spheres.
- ``isopoints``: spot's field (the Fast preset), its surface and 3000 iso-points on it.
- ``transfer``: the bumps of bumpy-cube onto a sphere (displacement fields, 500 steps each: ``--transfer-iterations``).
- ``shape-space``: reused only: ``bench/results/shape_space/interpolation.png`` (``bench/shape_space.py --renders``
  trains on 24 chairs: about an hour on 2 CPU cores).

    .venv/bin/python docs/gallery/make_gallery.py [--only nerf isopoints] [--reuse sdf shape-space] [--samples 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from inr_blender.outputs import atomic_write  # noqa: E402

GALLERY = os.path.join(REPO, "docs", "gallery")
RESULTS = os.path.join(REPO, "bench", "results")
DATA = os.path.join(REPO, "..", "shared", "data")
MESHES = os.path.join(DATA, "meshes")
LEGO = os.path.join(DATA, "nerf", "lego")
TEDDY = os.path.join(DATA, "skeletons", "teddy", "teddy.off")


@dataclass(frozen=True)
class Picture:
    """A gallery picture: how to regenerate it (None: reuse only) and the benchmark's committed picture."""

    name: str
    regenerate: Callable[[str, argparse.Namespace], str] | None
    committed: str


def run(cmd: list[str], what: str) -> None:
    """Run a step's command quietly; on failure, its output's tail and one line saying which command failed."""
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        print((result.stdout + result.stderr)[-3000:], file=sys.stderr)
        raise SystemExit(f"gallery: {what} failed (exit {result.returncode}): {' '.join(cmd)}")


def cli(*args: str) -> None:
    """``python -m inr_blender ARGS`` on the CPU."""
    run([sys.executable, "-m", "inr_blender", *args, "--device", "cpu"], f"inr_blender {args[0]}")


def render(script: str, output: str, args: argparse.Namespace, *items: str) -> str:
    run(
        [sys.executable, os.path.join(REPO, script), "--output", output, "--samples", str(args.samples), *items], f"render {os.path.basename(output)}"
    )
    return output


def need(*paths: str) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise SystemExit(
            f"gallery: the shared data set is needed to regenerate this picture ({os.path.normpath(missing[0])} is missing); or pass --reuse"
        )


def sdf(tmp: str, args: argparse.Namespace) -> str:
    """Screened Poisson beside the neural fits of a 100k-point scan of armadillo (the benchmark, shortened)."""
    need(os.path.join(MESHES, "armadillo.obj"))
    bench = [args.bench_python, os.path.join(REPO, "bench", "sdf_vs_poisson.py"), "--shapes", "armadillo", "--noise", "0"]
    run(
        [*bench, "--iterations-scale", "0.2", "--resolution", "256", "--output", os.path.join(tmp, "sdf.md"), "--mesh-dir", tmp],
        "bench/sdf_vs_poisson.py",
    )
    return os.path.join(tmp, "armadillo.png")


def nerf(tmp: str, args: argparse.Namespace) -> str:
    """A held-out view of lego rendered by the fast radiance field, beside its ground truth, with its PSNR."""
    from PIL import Image, ImageDraw, ImageFont

    from inr_blender.render.dataset import holdout_split, load_transforms
    from inr_blender.render.image_metrics import psnr_of_mse

    need(os.path.join(LEGO, "transforms_train.json"))
    field, view = os.path.join(tmp, "lego.pt"), os.path.join(tmp, "view.png")
    cli("fit-nerf", LEGO, "-o", field, "--downscale", "4", "--iterations", str(args.nerf_iterations), "--no-final-eval")
    views = load_transforms(LEGO, downscale=4)
    index = holdout_split(len(views.names), 8)[1][0]  # the fit's default: every 8th view is held out
    cli("render-view", field, LEGO, "-o", view, "--view", str(index), "--downscale", "4")
    rendered = np.asarray(Image.open(view).convert("RGB"), dtype=np.float64) / 255
    truth = np.clip(views.images[index][..., :3], 0.0, 1.0)
    score = psnr_of_mse(float(np.mean((rendered - truth) ** 2)))
    pair = np.concatenate([rendered, truth], axis=1)
    scale = 2  # 200x200 views, shown at 400x400
    image = Image.fromarray((pair * 255 + 0.5).astype(np.uint8)).resize((pair.shape[1] * scale, pair.shape[0] * scale), Image.LANCZOS)
    canvas = Image.new("RGB", (image.width, image.height + 48), "white")
    canvas.paste(image, (0, 0))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=24)
    half = image.width // 2
    for x, text in ((0, f"novel view (held out): {score:.1f} dB PSNR"), (half, "ground truth")):
        draw.text((x + half // 2, image.height + 22), text, fill=(40, 40, 40), font=font, anchor="mm")
    out = os.path.join(tmp, "nerf.png")
    canvas.save(out)
    print(f"  nerf: view {index} ({views.names[index]}) after {args.nerf_iterations} steps: PSNR {score:.2f} dB", flush=True)
    return out


def skeleton(tmp: str, args: argparse.Namespace) -> str:
    """Teddy, its neural skeleton (the Skeleton preset) and its medial spheres."""
    need(TEDDY)
    field, mesh, ma = os.path.join(tmp, "teddy.pt"), os.path.join(tmp, "teddy.ply"), os.path.join(tmp, "teddy.ma")
    steps = ["--iterations", str(args.skeleton_iterations)] if args.skeleton_iterations else []
    cli("fit-sdf", TEDDY, "-o", field, "--preset", "skeleton", *steps)
    cli("extract", field, "-o", mesh, "--resolution", "192")
    cli("skeleton", field, "-o", ma)
    panels = ["--panel", "surface", f"surface={mesh}", "--panel", "skeleton", f"complex={ma}", "--panel", "medial spheres", f"spheres={ma}"]
    return render("docs/gallery/render_points.py", os.path.join(tmp, "skeleton.png"), args, "--rotate", "90", "0", "0", *panels)


def isopoints(tmp: str, args: argparse.Namespace) -> str:
    """Spot's fitted surface, and the same surface with its iso-points."""
    spot = os.path.join(MESHES, "spot.obj")
    need(spot)
    field, mesh, points = os.path.join(tmp, "spot.pt"), os.path.join(tmp, "spot.ply"), os.path.join(tmp, "iso.ply")
    cli("fit-sdf", spot, "-o", field, "--preset", "fast")
    cli("extract", field, "-o", mesh, "--resolution", "192")
    cli("isopoints", field, "-o", points, "--count", "3000")
    panels = ["--panel", "extracted surface", f"surface={mesh}", "--panel", "3000 iso-points", f"surface={mesh}", f"points={points}"]
    return render("docs/gallery/render_points.py", os.path.join(tmp, "isopoints.png"), args, "--rotate", "90", "0", "-145", *panels)


def transfer(tmp: str, args: argparse.Namespace) -> str:
    """The bumps of bumpy-cube transferred onto a sphere's smooth base (displacement fields), as the benchmark's."""
    from inr_blender.fileio import write_mesh
    from inr_blender.geometry.primitives import icosphere

    cube = os.path.join(MESHES, "bumpy-cube.obj")
    need(cube)
    p = {k: os.path.join(tmp, k) for k in ("sphere.ply", "cube.pt", "sphere.pt", "moved.pt", "base.ply", "moved.ply")}
    write_mesh(p["sphere.ply"], *icosphere(1.0, 4))
    steps = ["--iterations", str(args.transfer_iterations)]
    cli("fit-sdf", cube, "-o", p["cube.pt"], "--method", "idf", *steps)
    cli("fit-sdf", p["sphere.ply"], "-o", p["sphere.pt"], "--method", "idf", "--base-only", *steps)
    cli("transfer", p["cube.pt"], p["sphere.pt"], "-o", p["moved.pt"], "--strength", "1")
    cli("extract", p["sphere.pt"], "-o", p["base.ply"], "--part", "base", "--resolution", "192")
    cli("extract", p["moved.pt"], "-o", p["moved.ply"], "--resolution", "192")
    items = [f"bumpy-cube={cube}", f"sphere base={p['base.ply']}", f"transferred={p['moved.ply']}"]
    return render("bench/render_row.py", os.path.join(tmp, "transfer.png"), args, "--each", "--resolution", "1200", "400", *items)


PICTURES = {
    p.name: p
    for p in (
        Picture("sdf", sdf, "sdf_vs_poisson/armadillo.png"),
        Picture("nerf", nerf, "nerf_lego/fast_200.png"),
        Picture("skeleton", skeleton, "skeleton/teddy.png"),
        Picture("isopoints", isopoints, ""),
        Picture("transfer", transfer, "displacement/bumpy-cube-to-sphere.png"),
        Picture("shape-space", None, "shape_space/interpolation.png"),
    )
}


def shrink(source: str, name: str, width: int) -> str:
    """Write ``docs/gallery/NAME.png``: ``source`` scaled down to at most ``width`` pixels wide, in 256 colours
    (renders and views have few: the file is about half the size of full RGB's)."""
    from PIL import Image

    image = Image.open(source).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path = os.path.join(GALLERY, f"{name}.png")
    with atomic_write(path) as fh:
        image.save(fh, format="PNG", optimize=True)
    return path


def make(picture: Picture, args: argparse.Namespace) -> None:
    started = time.monotonic()
    if picture.name in args.reuse:
        if not picture.committed:
            raise SystemExit(f"gallery: {picture.name} has no benchmark picture to reuse: regenerate it")
        source = os.path.join(RESULTS, picture.committed)
        how = f"reused {os.path.relpath(source, REPO)}"
    elif picture.regenerate is None:
        raise SystemExit(f"gallery: {picture.name} is only reused (--reuse {picture.name}): {picture.committed} comes from its benchmark")
    else:
        with tempfile.TemporaryDirectory(prefix=f"gallery-{picture.name}-") as tmp:
            path = shrink(picture.regenerate(tmp, args), picture.name, args.width)
        print(
            f"{picture.name}: regenerated in {time.monotonic() - started:.0f} s: {os.path.relpath(path, REPO)} ({os.path.getsize(path) // 1024} KB)",
            flush=True,
        )
        return
    path = shrink(source, picture.name, args.width)
    print(f"{picture.name}: {how}: {os.path.relpath(path, REPO)} ({os.path.getsize(path) // 1024} KB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = list(PICTURES)
    parser.add_argument("--only", nargs="+", choices=names, default=names, metavar="NAME", help=f"pictures to make (default all: {', '.join(names)})")
    parser.add_argument("--reuse", nargs="*", choices=names, default=[], metavar="NAME", help="shrink the benchmark's committed picture instead")
    parser.add_argument("--width", type=int, default=900, help="largest width of a gallery picture in pixels")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples of the renders")
    parser.add_argument("--nerf-iterations", type=int, default=300, help="training steps of the radiance field (about 0.5 s each on 2 CPU cores)")
    parser.add_argument("--skeleton-iterations", type=int, default=0, help="training steps of the skeleton's field (0: the preset's)")
    parser.add_argument("--transfer-iterations", type=int, default=500, help="steps of each displacement-field fit")
    parser.add_argument("--bench-python", default=sys.executable, help="a Python with open3d, for the sdf picture (.venv-bench/bin/python)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    for name in args.only:
        make(PICTURES[name], args)
    print(f"gallery: {len(args.only)} pictures in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
