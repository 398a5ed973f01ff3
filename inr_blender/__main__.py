"""Command line: ``python -m inr_blender {serve,fit-sdf,fit-nerf,render-view,extract,skeleton,isopoints,transfer,metrics,
fit-shape-space,reconstruct,interpolate} ...``.

``fit-shape-space`` runs data-parallel when started by torchrun, e.g.
``torchrun --standalone --nproc_per_node 2 -m inr_blender fit-shape-space a.obj b.obj c.obj -o space.pt``.

The subcommands run the same job functions as the worker, with progress
printed to stdout. Bad input prints ``error: ...`` to stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _run(name: str, params: dict[str, Any], arrays: dict) -> tuple[dict[str, Any], dict]:
    from .context import JobContext
    from .jobs import JOBS

    return JOBS[name](params, arrays, JobContext(verbose=True))


def _serve(args: argparse.Namespace) -> None:
    from .wire.worker import serve

    token = args.token
    if not token and args.token_file:
        with open(args.token_file) as fh:
            token = fh.read().strip()
    token = token or os.environ.get("INR_TOKEN", "")
    serve(host=args.host, port=args.port, token=token, once=args.once, port_file=args.port_file)


def _fit_sdf(args: argparse.Namespace) -> None:
    from .fileio import read_geometry

    arrays = read_geometry(args.input)
    params = {
        "method": args.method, "checkpoint_path": args.output, "iterations": args.iterations, "width": args.width,
        "depth": args.depth, "batch_size": args.batch_size, "learning_rate": args.lr, "device": args.device,
        "num_samples": args.num_samples, "seed": args.seed, "max_seconds": args.max_seconds,
        "convergence_tolerance": args.tolerance, "isopoints": args.isopoints,
    }
    if args.base_only:  # a displacement field's smooth base alone: a target for detail transfer
        params.update(phase_base=1.0, phase_detail=1.0)
    result, _ = _run("fit_sdf", {k: v for k, v in params.items() if v is not None}, arrays)
    print(
        f"fitted {result['method'].upper()} on {result['num_points']} points in {result['seconds']:.1f} s "
        f"({result['device']}), final loss {result['final_loss']:.5g}: {result['checkpoint_path']}"
    )
    print(f"stopped: {result['stop_reason']}")


def _fit_nerf(args: argparse.Namespace) -> None:
    params = {
        "transforms_path": args.transforms, "checkpoint_path": args.output, "model": args.model,
        "iterations": args.iterations, "max_seconds": args.max_seconds, "downscale": args.downscale,
        "holdout_every": args.holdout_every, "learning_rate": args.lr, "seed": args.seed, "device": args.device,
        "background": args.background,
    }
    result, _ = _run("fit_nerf", {k: v for k, v in params.items() if v is not None}, {})
    held_out = "no held-out views" if result["psnr"] is None else (
        f"held-out PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f} on {result['num_holdout']} views")
    print(f"fitted NeRF ({result['model']}) on {result['num_views']} views of {result['width']}x{result['height']} "
          f"in {result['seconds']:.1f} s ({result['device']}): {held_out}: {result['checkpoint_path']}")
    print(f"stopped: {result['stop_reason']}")


def _render_view(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image

    from .context import JobError
    from .render.dataset import load_transforms

    views = load_transforms(args.transforms, downscale=args.downscale)
    if not 0 <= args.view < len(views.names):
        raise JobError(f"view {args.view} does not exist: {args.transforms} has {len(views.names)} views")
    params = {"checkpoint_path": args.field, "width": views.width, "height": views.height,
              "intrinsics": views.intrinsics[args.view].tolist(), "device": args.device}
    result, arrays = _run("render_nerf_view", params, {"c2w": views.c2w[args.view].astype(np.float32)})
    Image.fromarray((arrays["rgb"] * 255 + 0.5).astype(np.uint8)).save(args.output)
    print(f"rendered view {args.view} ({views.names[args.view]}) in {result['seconds']:.1f} s: {args.output}")


def _extract(args: argparse.Namespace) -> None:
    from .fileio import write_mesh

    params = {"checkpoint_path": args.field, "resolution": args.resolution, "level": args.level, "device": args.device,
              "space": "world", "method": args.method, "part": args.part}
    if args.range_mode:
        params["range_mode"] = args.range_mode
    if args.threshold is not None:
        params["threshold"] = args.threshold
    result, arrays = _run("extract_mesh", params, {})
    write_mesh(args.output, arrays["vertices"], arrays["faces"], arrays["normals"], arrays.get("colors"))
    print(f"wrote {result['num_vertices']} vertices, {result['num_faces']} faces to {args.output}")


def _transfer(args: argparse.Namespace) -> None:
    params = {"source_checkpoint": args.source, "target_checkpoint": args.target, "checkpoint_path": args.output,
              "strength": args.strength, "nu": args.nu, "mode": args.mode}
    result, _ = _run("transfer_detail", {k: v for k, v in params.items() if v is not None}, {})
    print(f"wrote the transferred field ({result['mode']}, strength {result['strength']:g}, nu {result['nu']:g}): "
          f"{result['checkpoint_path']}")


def _skeleton(args: argparse.Namespace) -> None:
    from .fileio import write_skeleton

    params = {"checkpoint_path": args.field, "delta": args.delta, "num_surface_samples": args.surface_samples,
              "time_limit": args.time_limit, "device": args.device, "space": "world"}
    result, arrays = _run("extract_skeleton", {k: v for k, v in params.items() if v is not None}, {})
    write_skeleton(args.output, arrays["vertices"], arrays["radius"], arrays["edges"], arrays["triangles"])
    print(f"wrote {result['num_vertices']} skeletal vertices, {result['num_edges']} edges, {result['num_triangles']} "
          f"triangles to {args.output} in {result['seconds']:.1f} s; cover: {result['cover_message']}")


def _isopoints(args: argparse.Namespace) -> None:
    from .fileio import write_mesh

    params = {"checkpoint_path": args.field, "count": args.count, "resample": not args.no_resample,
              "upsample": args.upsample, "device": args.device, "space": "world"}
    result, arrays = _run("sample_isopoints", params, {})
    write_mesh(args.output, arrays["points"], None, arrays["normals"])
    print(f"wrote {result['num_points']} iso-points with normals to {args.output} ({result['num_discarded']} did not "
          f"converge, {result['num_upsampled']} upsampled, spacing CV {result['spacing_cv']:.3f}) in {result['seconds']:.1f} s")


def _metrics(args: argparse.Namespace) -> None:
    from .context import JobError
    from .fileio import read_geometry

    arrays = {}
    for key, path in (("a", args.reference), ("b", args.candidate)):
        mesh = read_geometry(path)
        if "faces" not in mesh:
            raise JobError(f"{path} has no faces; metrics compare triangle meshes")
        arrays[f"vertices_{key}"], arrays[f"faces_{key}"] = mesh["vertices"], mesh["faces"]
    result, _ = _run("metrics", {"num_samples": args.num_samples, "seed": args.seed}, arrays)
    for key, value in result.items():
        print(f"{key}: {value:.6g}")


def _fit_shape_space(args: argparse.Namespace) -> None:
    from .context import JobError
    from .fileio import read_geometry
    from .fitting.shape_space import pack_meshes

    meshes = []
    for path in args.inputs:
        mesh = read_geometry(path)
        if "faces" not in mesh:
            raise JobError(f"{path} has no faces: a shape space is fitted to meshes")
        meshes.append(mesh)
    arrays = pack_meshes([(m["vertices"], m["faces"]) for m in meshes])
    params = {"checkpoint_path": args.output, "names": [os.path.splitext(os.path.basename(p))[0] for p in args.inputs],
              "method": args.method, "latent_size": args.latent_size, "width": args.width, "depth": args.depth,
              "skip": args.skip, "dropout": args.dropout, "iterations": args.iterations, "shapes_per_step": args.shapes_per_step,
              "samples_per_shape": args.samples_per_shape, "num_samples": args.num_samples, "lr_decoder": args.lr_decoder,
              "lr_codes": args.lr_codes, "seed": args.seed, "error_resolution": args.error_resolution, "device": args.device,
              "max_seconds": args.max_seconds}
    result, _ = _run("fit_shape_space", {k: v for k, v in params.items() if v is not None}, arrays)
    if not result["checkpoint_path"]:  # a torchrun rank other than 0
        return
    print(f"fitted a shape space ({result['method']}) of {result['num_shapes']} shapes in {result['seconds']:.1f} s on "
          f"{result['world_size']} process(es) ({result['device']}), final loss {result['final_loss']:.5g}: {result['checkpoint_path']}")
    for name, error in zip(result["names"], result["errors"]):
        print(f"  {name}: Chamfer-L1 {error:.5f}")


def _reconstruct(args: argparse.Namespace) -> None:
    from .fileio import read_geometry, write_mesh

    scan = read_geometry(args.scan)
    arrays = {"points": scan["vertices"]}
    if scan.get("normals") is not None:
        arrays["normals"] = scan["normals"]
    params = {"checkpoint_path": args.space, "iterations": args.iterations, "resolution": args.resolution,
              "output_checkpoint_path": args.field, "device": args.device}
    result, out = _run("reconstruct_shape", {k: v for k, v in params.items() if v is not None}, arrays)
    write_mesh(args.output, out["vertices"], out["faces"], out["normals"])
    print(f"completed the scan ({len(arrays['points'])} points, mean |f| {result['fit_error']:.4g}) in {result['seconds']:.1f} s: "
          f"{result['num_vertices']} vertices to {args.output}")


def _interpolate(args: argparse.Namespace) -> None:
    import numpy as np

    from .fileio import write_mesh

    params = {"checkpoint_path": args.space, "a": args.a, "b": args.b, "count": args.count, "resolution": args.resolution,
              "correspond": False, "device": args.device}
    result, out = _run("interpolate_shapes", params, {})
    stem, ext = os.path.splitext(args.output)
    starts = np.concatenate([[0], np.cumsum(out["vertex_counts"])]), np.concatenate([[0], np.cumsum(out["face_counts"])])
    for k, t in enumerate(out["t"]):
        path = f"{stem}_{k:02d}{ext or '.ply'}"
        write_mesh(path, out["vertices"][starts[0][k] : starts[0][k + 1]], out["faces"][starts[1][k] : starts[1][k + 1]])
        print(f"t={t:.3f}: {path} (volume {out['volumes'][k]:.4f}, local units)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for all subcommands."""
    parser = argparse.ArgumentParser(prog="inr-blender", description="Neural implicit fields backend for Blender.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve jobs over TCP (the worker)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    p.add_argument("--token", default=None, help="shared secret (or --token-file, or the INR_TOKEN variable)")
    p.add_argument("--token-file", default=None, help="read the token from this file")
    p.add_argument("--port-file", default=None, help="write the bound port to this file once listening")
    p.add_argument("--once", action="store_true", help="exit when the first client disconnects")
    p.set_defaults(func=_serve)

    p = sub.add_parser("fit-sdf", help="fit a signed distance field to a mesh or point cloud")
    p.add_argument("input", help="input .ply, .obj or .npz")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--method", choices=("igr", "siren", "hashgrid", "neural_skeleton", "idf"), default="igr")
    p.add_argument("--iterations", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--depth", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--num-samples", type=int, help="surface samples drawn from a mesh input")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-seconds", type=float, help="stop after this long")
    p.add_argument("--tolerance", type=float, help="stop once the loss improves by less than this fraction (0: never)")
    p.add_argument("--isopoints", type=int, help="fit with this many iso-points (refreshed every 1000 steps after 300)")
    p.add_argument("--base-only", action="store_true", help="idf: fit the smooth base alone (a target for detail transfer)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_fit_sdf)

    p = sub.add_parser("fit-nerf", help="fit a radiance field to a transforms.json dataset")
    p.add_argument("transforms", help="transforms.json, or the folder holding it")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--model", choices=("fast", "classic"), default="fast")
    p.add_argument("--iterations", type=int)
    p.add_argument("--max-seconds", type=float, help="stop after this long")
    p.add_argument("--downscale", type=int, help="divide the image size by this integer")
    p.add_argument("--holdout-every", type=int, help="hold out every n-th view for evaluation (0: none; default 8)")
    p.add_argument("--background", type=float, nargs=3, help="RGB in [0, 1] behind transparent images (default white)")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_fit_nerf)

    p = sub.add_parser("render-view", help="render one camera of a transforms.json with a radiance field")
    p.add_argument("field", help="radiance-field checkpoint (.pt)")
    p.add_argument("transforms", help="transforms.json (or its folder) with the camera")
    p.add_argument("-o", "--output", required=True, help="image to write (.png)")
    p.add_argument("--view", type=int, default=0, help="index of the camera")
    p.add_argument("--downscale", type=int, default=1)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_render_view)

    p = sub.add_parser("extract", help="extract a mesh (world space) from a fitted field")
    p.add_argument("field", help="checkpoint (.pt)")
    p.add_argument("-o", "--output", required=True, help="mesh to write (.ply or .obj)")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--level", type=float, default=0.0)
    p.add_argument("--method", choices=["sparse", "dense", "guaranteed"], default="sparse",
                   help="sparse: refine only blocks the surface can cross (default); guaranteed: cull by range analysis (any field)")
    p.add_argument("--range-mode", default=None, help="guaranteed: interval, affine_fixed, affine_truncate, affine_append or affine_all (default)")
    p.add_argument("--threshold", type=float, help="radiance fields: the density of the surface (vertex colours go to .ply)")
    p.add_argument("--part", choices=("detailed", "base"), default="detailed", help="displacement fields: the detailed surface or the smooth base")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_extract)

    p = sub.add_parser("skeleton", help="extract the skeletal complex (medial axis, world space) of a fitted SDF")
    p.add_argument("field", help="checkpoint (.pt)")
    p.add_argument("-o", "--output", required=True, help="skeleton to write: .ma (vertices with radii, edges, faces) or .obj")
    p.add_argument("--delta", type=float, help="coverage dilation, a fraction of the shape's longest half-extent (default 0.06)")
    p.add_argument("--surface-samples", type=int, help="surface samples to cover (default 2000)")
    p.add_argument("--time-limit", type=float, help="seconds for the set-cover MILP (default 60)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_skeleton)

    p = sub.add_parser("isopoints", help="sample iso-points (an even point cloud with normals, world space) of a fitted SDF")
    p.add_argument("field", help="checkpoint (.pt)")
    p.add_argument("-o", "--output", required=True, help="point cloud to write (.ply or .obj)")
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--no-resample", action="store_true", help="keep the raw projected points (no uniform resampling)")
    p.add_argument("--upsample", type=int, default=0, help="points to add by edge-aware upsampling")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_isopoints)

    p = sub.add_parser("transfer", help="put the detail of a displacement field onto the base of another SDF")
    p.add_argument("source", help="displacement-field checkpoint (fit-sdf --method idf) whose detail is taken")
    p.add_argument("target", help="SDF checkpoint whose base receives it (a displacement field gives its base)")
    p.add_argument("-o", "--output", required=True, help="checkpoint of the transferred field to write (.pt)")
    p.add_argument("--strength", type=float, help="scale on the displacement (default 1; 0 gives the target's base)")
    p.add_argument("--nu", type=float, help="width of the shell where detail acts (default: the source's)")
    p.add_argument("--mode", choices=("projected", "aligned"), help="read the detail at the source base's closest point (default) or at the same coordinates")
    p.set_defaults(func=_transfer)

    p = sub.add_parser("metrics", help="Chamfer distances of a mesh against a reference mesh")
    p.add_argument("reference", help="reference mesh (.obj or .ply)")
    p.add_argument("candidate", help="mesh to evaluate (.obj or .ply)")
    p.add_argument("--num-samples", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_metrics)

    p = sub.add_parser("fit-shape-space", help="fit a shape space (DeepSDF auto-decoder) to a collection of meshes")
    p.add_argument("inputs", nargs="+", help="meshes (.obj or .ply), one per shape")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--method", choices=("deepsdf", "occupancy"), default="deepsdf")
    for name, kind in (("latent-size", int), ("width", int), ("depth", int), ("skip", int), ("dropout", float),
                       ("iterations", int), ("shapes-per-step", int), ("samples-per-shape", int), ("num-samples", int),
                       ("lr-decoder", float), ("lr-codes", float), ("seed", int), ("error-resolution", int),
                       ("max-seconds", float)):
        p.add_argument(f"--{name}", type=kind)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_fit_shape_space)

    p = sub.add_parser("reconstruct", help="complete a partial scan (points in the space's frame) with a shape space")
    p.add_argument("space", help="shape-space checkpoint (.pt)")
    p.add_argument("scan", help="partial scan: point cloud or mesh (.ply, .obj or .npz), normals used when present")
    p.add_argument("-o", "--output", required=True, help="completed mesh to write (.ply or .obj)")
    p.add_argument("--field", help="also write the completed shape as a field checkpoint (.pt)")
    p.add_argument("--iterations", type=int)
    p.add_argument("--resolution", type=int)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_reconstruct)

    p = sub.add_parser("interpolate", help="meshes of the shapes between two shapes of a shape space")
    p.add_argument("space", help="shape-space checkpoint (.pt)")
    p.add_argument("a", type=int, help="index of the first shape")
    p.add_argument("b", type=int, help="index of the second shape")
    p.add_argument("-o", "--output", required=True, help="mesh path; _00, _01, ... are appended per step")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--resolution", type=int, default=96)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=_interpolate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``inr-blender`` and ``python -m inr_blender``."""
    args = build_parser().parse_args(argv)
    from .context import Cancelled, JobError

    try:
        args.func(args)
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
