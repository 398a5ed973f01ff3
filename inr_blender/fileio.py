"""Read and write point clouds and triangle meshes (.obj, .ply ascii / binary, .off, .npz) and medial axes (.ma).

Readers return a dict of arrays named like the job inputs:
``points`` (N, 3) with optional ``normals`` for point clouds, and
``vertices`` (V, 3) + ``faces`` (F, 3) with optional ``vertex_normals`` for
meshes. Polygons are fan-triangulated. ``.npz`` files are read without pickle.
Writers write atomically (:func:`~.outputs.atomic_write`): an interrupted write leaves the old file.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

from .context import JobError
from .outputs import atomic_write

READ_FORMATS = (".obj", ".ply", ".off", ".npz")
WRITE_FORMATS = (".obj", ".ply")
SKELETON_FORMATS = (".ma", ".obj")


def formats(extensions: tuple[str, ...]) -> str:
    """How help texts name a list of formats: '.obj, .ply, .off or .npz'."""
    return extensions[0] if len(extensions) == 1 else f"{', '.join(extensions[:-1])} or {extensions[-1]}"


# The files every command that reads geometry reads, as its help names them.
READ_TEXT = f"{formats(READ_FORMATS)}; a .npz holds the arrays points (and normals) or vertices and faces"
WRITE_TEXT = formats(WRITE_FORMATS)  # the files every command that writes a mesh or points writes

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


def _extension(path: str, allowed: tuple[str, ...], action: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in allowed:
        raise JobError(f"cannot {action} {path!r}: unknown format {ext or '(no extension)'}; use {', '.join(allowed)}")
    return ext


def _triangulate(polygons: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Fan-triangulate polygons given as an (F, k) array or a list of index arrays; (T, 3) int64."""
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        groups = [polygons]
    else:
        by_size: dict[int, list[np.ndarray]] = {}
        for poly in polygons:
            by_size.setdefault(len(poly), []).append(poly)
        groups = [np.asarray(v) for k, v in by_size.items() if k >= 3]
    tris = [np.stack([g[:, 0], g[:, i], g[:, i + 1]], axis=1) for g in groups if g.shape[1] >= 3 for i in range(1, g.shape[1] - 1)]
    return np.concatenate(tris).astype(np.int64) if tris else np.zeros((0, 3), dtype=np.int64)


def _finish(vertices: np.ndarray, faces: np.ndarray | None, normals: np.ndarray | None, path: str) -> dict[str, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if len(vertices) == 0:
        raise JobError(f"{path} contains no vertices")
    if faces is not None and len(faces):
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise JobError(f"{path} has faces that index missing vertices")
        out = {"vertices": vertices, "faces": faces.astype(np.int64)}
        if normals is not None:
            out["vertex_normals"] = normals
        return out
    out = {"points": vertices}
    if normals is not None:
        out["normals"] = normals
    return out


# -- OBJ ------------------------------------------------------------------------------


def read_obj(path: str) -> dict[str, np.ndarray]:
    """Wavefront OBJ: ``v``, ``vn`` and ``f`` (any polygon; ``vt`` ignored; negative indices allowed)."""
    verts: list[list[float]] = []
    vnormals: list[list[float]] = []
    polys: list[np.ndarray] = []
    corner_normals: list[tuple[int, int]] = []
    with open(path, errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            tag = parts[0]
            try:
                if tag == "v":
                    verts.append([float(t) for t in parts[1:4]])
                elif tag == "vn":
                    vnormals.append([float(t) for t in parts[1:4]])
                elif tag == "f":
                    poly = []
                    for corner in parts[1:]:
                        fields = corner.split("/")
                        vi = int(fields[0])
                        vi = vi - 1 if vi > 0 else len(verts) + vi
                        poly.append(vi)
                        if len(fields) >= 3 and fields[2]:
                            ni = int(fields[2])
                            corner_normals.append((vi, ni - 1 if ni > 0 else len(vnormals) + ni))
                    polys.append(np.asarray(poly, dtype=np.int64))
            except (ValueError, IndexError):
                raise JobError(f"{path}:{lineno}: malformed {tag!r} line") from None
    if any(len(v) != 3 for v in verts):
        raise JobError(f"{path}: a vertex has fewer than three coordinates")
    normals = None
    if corner_normals and vnormals:
        normals = np.zeros((len(verts), 3))
        vi, ni = np.asarray(corner_normals).T
        if ni.min() < 0 or ni.max() >= len(vnormals):
            raise JobError(f"{path}: faces reference missing normals")
        normals[vi] = np.asarray(vnormals)[ni]
    elif vnormals and len(vnormals) == len(verts):
        normals = np.asarray(vnormals, dtype=np.float64)
    faces = _triangulate(polys) if polys else None
    return _finish(np.asarray(verts), faces, normals, path)


def write_obj(path: str, vertices: np.ndarray, faces: np.ndarray | None = None, normals: np.ndarray | None = None) -> None:
    """Write vertices, optional per-vertex normals and triangles as OBJ (1-based indices)."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write("# written by inr_blender\n")
        np.savetxt(fh, np.asarray(vertices), fmt="v %.9g %.9g %.9g")
        if normals is not None:
            np.savetxt(fh, np.asarray(normals), fmt="vn %.6g %.6g %.6g")
        if faces is not None and len(faces):
            f = np.asarray(faces, dtype=np.int64) + 1
            if normals is not None:
                np.savetxt(fh, np.repeat(f, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
            else:
                np.savetxt(fh, f, fmt="f %d %d %d")


# -- PLY ------------------------------------------------------------------------------


def _ply_header(fh, path: str) -> tuple[str, list[dict[str, Any]]]:
    if fh.readline().strip() != b"ply":
        raise JobError(f"{path} is not a PLY file")
    fmt = None
    elements: list[dict[str, Any]] = []
    while True:
        raw = fh.readline()
        if not raw:
            raise JobError(f"{path}: PLY header has no end_header")
        parts = raw.decode("ascii", errors="replace").split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "end_header":
            break
        try:
            if parts[0] == "format":
                fmt = parts[1]
            elif parts[0] == "element":
                elements.append({"name": parts[1], "count": int(parts[2]), "props": []})
            elif parts[0] == "property":
                if parts[1] == "list":
                    elements[-1]["props"].append((parts[4], _PLY_TYPES[parts[2]], _PLY_TYPES[parts[3]]))
                else:
                    elements[-1]["props"].append((parts[2], _PLY_TYPES[parts[1]], None))
        except (IndexError, KeyError, ValueError):
            raise JobError(f"{path}: malformed PLY header line {raw.strip()!r}") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise JobError(f"{path}: unsupported PLY format {fmt!r}")
    return fmt, elements


def _ply_binary_element(data: bytes, pos: int, element: dict, endian: str) -> tuple[dict[str, Any], int]:
    """Read one element's records from ``data`` at ``pos``; lists come back as (n, k) arrays or lists."""
    props, count = element["props"], element["count"]
    if all(p[2] is None for p in props):
        dtype = np.dtype([(name, endian + t) for name, t, _ in props])
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
        return {name: arr[name] for name, _, _ in props}, pos + dtype.itemsize * count
    # Fast path: every list has the length of the first record's (e.g. all triangles).
    fields: list[tuple[Any, ...]] = []
    probe = pos
    for name, t, list_t in props:
        if list_t is None:
            fields.append((name, endian + t))
            probe += np.dtype(t).itemsize
        else:
            (k,) = np.frombuffer(data, dtype=endian + t, count=1, offset=probe) if count else (0,)
            fields += [(name + "#n", endian + t), (name, endian + list_t, (int(k),))]
            probe += np.dtype(t).itemsize + int(k) * np.dtype(list_t).itemsize
    try:
        dtype = np.dtype(fields)
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
        if all((arr[n + "#n"] == arr.dtype[n].shape[0]).all() for n, _, lt in props if lt is not None):
            return {name: arr[name] for name, _, _ in props}, pos + dtype.itemsize * count
    except ValueError:
        pass  # ran past the end with the guessed sizes: lists differ in length
    out: dict[str, list] = {name: [] for name, _, _ in props}
    for _ in range(count):
        for name, t, list_t in props:
            size = np.dtype(t).itemsize
            (value,) = struct.unpack_from(endian + np.dtype(t).char, data, pos)
            pos += size
            if list_t is None:
                out[name].append(value)
            else:
                n = int(value)
                out[name].append(np.frombuffer(data, dtype=endian + list_t, count=n, offset=pos))
                pos += n * np.dtype(list_t).itemsize
    return {name: (v if any(p[0] == name and p[2] for p in props) else np.asarray(v)) for name, v in out.items()}, pos


def _ply_ascii_element(lines: list[bytes], element: dict) -> dict[str, Any]:
    props, count = element["props"], element["count"]
    rows = [ln.split() for ln in lines]
    if rows and all(len(r) == len(rows[0]) for r in rows):  # uniform rows: one vectorised parse
        table = np.asarray(rows, dtype=np.float64).reshape(count, -1)
        table_out: dict[str, np.ndarray] = {}
        col = 0
        for name, _, list_t in props:
            if list_t is None:
                table_out[name] = table[:, col]
                col += 1
            else:
                k = int(table[0, col]) if count else 0
                table_out[name] = table[:, col + 1 : col + 1 + k].astype(np.int64)
                col += 1 + k
        return table_out
    out: dict[str, list[Any]] = {name: [] for name, _, _ in props}
    for r in rows:
        col = 0
        for name, _, list_t in props:
            if list_t is None:
                out[name].append(float(r[col]))
                col += 1
            else:
                k = int(r[col])
                out[name].append(np.asarray(r[col + 1 : col + 1 + k], dtype=np.int64))
                col += 1 + k
    return out


def read_ply(path: str) -> dict[str, np.ndarray]:
    """PLY (ascii, binary little or big endian): vertex x y z, optional nx ny nz, optional face list."""
    with open(path, "rb") as fh:
        fmt, elements = _ply_header(fh, path)
        body = fh.read()
    parsed: dict[str, dict[str, Any]] = {}
    try:
        if fmt == "ascii":
            lines = [ln for ln in body.splitlines() if ln.strip()]
            start = 0
            for el in elements:
                parsed[el["name"]] = _ply_ascii_element(lines[start : start + el["count"]], el)
                start += el["count"]
        else:
            endian, pos = ("<" if fmt == "binary_little_endian" else ">"), 0
            for el in elements:
                parsed[el["name"]], pos = _ply_binary_element(body, pos, el, endian)
    except (ValueError, IndexError, struct.error):
        raise JobError(f"{path}: PLY body is truncated or does not match its header") from None
    vertex = parsed.get("vertex")
    if vertex is None or not all(k in vertex for k in "xyz"):
        raise JobError(f"{path}: PLY has no vertex element with x, y, z")
    vertices = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in "xyz"], axis=1)
    normals = None
    if all(k in vertex for k in ("nx", "ny", "nz")):
        normals = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in ("nx", "ny", "nz")], axis=1)
    faces = None
    face = parsed.get("face", {})
    polys = face.get("vertex_indices", face.get("vertex_index"))
    if polys is not None and len(polys):
        faces = _triangulate(polys if isinstance(polys, list) else np.asarray(polys, dtype=np.int64))
    return _finish(vertices, faces, normals, path)


def write_ply(
    path: str,
    vertices: np.ndarray,
    faces: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    colors: np.ndarray | None = None,
) -> None:
    """Write a binary little-endian PLY: float x y z, optional float nx ny nz, optional uchar red green blue
    (from ``colors`` in [0, 1]), optional triangles."""
    v = np.asarray(vertices, dtype="<f4")
    props = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if normals is not None:
        props += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if colors is not None:
        props += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vrec = np.empty(len(v), dtype=props)
    for i, name in enumerate("xyz"):
        vrec[name] = v[:, i]
    if normals is not None:
        n = np.asarray(normals, dtype="<f4")
        for i, name in enumerate(("nx", "ny", "nz")):
            vrec[name] = n[:, i]
    if colors is not None:
        c = np.clip(np.round(np.asarray(colors, dtype=np.float64) * 255.0), 0, 255).astype("u1")
        for i, name in enumerate(("red", "green", "blue")):
            vrec[name] = c[:, i]
    header = ["ply", "format binary_little_endian 1.0", "comment written by inr_blender", f"element vertex {len(v)}"]
    header += [f"property {'uchar' if dtype == 'u1' else 'float'} {name}" for name, dtype in props]
    nfaces = 0 if faces is None else len(faces)
    if nfaces:
        header += [f"element face {nfaces}", "property list uchar int vertex_indices"]
    header.append("end_header")
    with atomic_write(path) as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vrec.tobytes())
        if nfaces:
            frec = np.empty(nfaces, dtype=[("n", "u1"), ("idx", "<i4", (3,))])
            frec["n"] = 3
            frec["idx"] = np.asarray(faces)
            fh.write(frec.tobytes())


# -- OFF ------------------------------------------------------------------------------


def read_off(path: str) -> dict[str, np.ndarray]:
    """Object File Format: ``OFF``, a "V F E" count line, V vertex lines, F polygon lines ``n i j k ...``."""
    with open(path, errors="replace") as fh:
        tokens = [line.split("#", 1)[0].split() for line in fh]
    lines = [t for t in tokens if t]
    if not lines or not lines[0][0].endswith("OFF"):
        raise JobError(f"{path}: not an OFF file (no OFF header)")
    header = lines[0][1:] or lines[1]
    body = lines[1:] if lines[0][1:] else lines[2:]
    try:
        nv, nf = int(header[0]), int(header[1])
        verts = np.asarray([[float(x) for x in line[:3]] for line in body[:nv]], dtype=np.float64)
        polys = [np.asarray(line[1 : 1 + int(line[0])], dtype=np.int64) for line in body[nv : nv + nf]]
    except (ValueError, IndexError):
        raise JobError(f"{path}: malformed OFF file") from None
    if len(verts) != nv or len(polys) != nf or verts.shape[1:] != (3,):
        raise JobError(f"{path}: the OFF file is truncated ({nv} vertices and {nf} faces announced)")
    return _finish(verts, _triangulate(polys) if polys else None, None, path)


# -- NPZ ------------------------------------------------------------------------------


def read_npz(path: str) -> dict[str, np.ndarray]:
    """NumPy archive with ``points`` (+ ``normals``) and/or ``vertices`` + ``faces``; no pickle."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("points", "normals", "vertices", "faces") if k in data.files}
    except ValueError as exc:
        raise JobError(f"{path}: not a plain .npz archive ({exc})") from None
    if "vertices" in arrays and "faces" not in arrays and "points" not in arrays:
        arrays["points"] = arrays.pop("vertices")  # vertices without faces are a point cloud
    if "points" not in arrays and "vertices" not in arrays:
        raise JobError(f"{path}: .npz needs 'points' or 'vertices' and 'faces'")
    return arrays


# -- medial axes (.ma) ---------------------------------------------------------------


def read_ma(path: str) -> dict[str, np.ndarray]:
    """A medial mesh in Q-MAT's .ma format: a count line "V E F", then ``v x y z r`` (extra columns ignored),
    ``e i j`` and ``f i j k`` lines (0-based). Returns ``vertices`` (V, 3), ``radius`` (V,), ``edges`` and ``faces``."""
    if not os.path.isfile(path):
        raise JobError(f"file not found: {path}")
    vertices, edges, faces = [], [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            parts = line.split()
            if not parts or parts[0] not in ("v", "e", "f"):
                continue
            try:
                if parts[0] == "v":
                    vertices.append([float(x) for x in parts[1:5]])
                elif parts[0] == "e":
                    edges.append([int(x) for x in parts[1:3]])
                else:
                    faces.append([int(x) for x in parts[1:4]])
            except ValueError:
                raise JobError(f"{path}:{number}: cannot read {line.strip()!r}") from None
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 4)
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(v) == 0:
        raise JobError(f"{path}: no medial vertices")
    if (e.size and (e.min() < 0 or e.max() >= len(v))) or (f.size and (f.min() < 0 or f.max() >= len(v))):
        raise JobError(f"{path}: an edge or face refers to a vertex that does not exist")
    return {"vertices": v[:, :3], "radius": v[:, 3], "edges": e, "faces": f}


def write_skeleton(path: str, vertices: np.ndarray, radius: np.ndarray, edges: np.ndarray, triangles: np.ndarray) -> None:
    """Write a skeletal complex: .ma (with radii) or .obj (``v``, ``l`` for the edges outside triangles, ``f``)."""
    ext = _extension(path, SKELETON_FORMATS, "write")
    with atomic_write(path, "w", encoding="utf-8") as fh:
        if ext == ".ma":
            fh.write(f"{len(vertices)} {len(edges)} {len(triangles)}\n")
            fh.writelines(f"v {x:.8g} {y:.8g} {z:.8g} {r:.8g}\n" for (x, y, z), r in zip(vertices, radius))
            fh.writelines(f"e {i} {j}\n" for i, j in edges)
            fh.writelines(f"f {i} {j} {k}\n" for i, j, k in triangles)
        else:
            fh.writelines(f"v {x:.8g} {y:.8g} {z:.8g}\n" for x, y, z in vertices)
            fh.writelines(f"l {i + 1} {j + 1}\n" for i, j in loose_edges(edges, triangles))
            fh.writelines(f"f {i + 1} {j + 1} {k + 1}\n" for i, j, k in triangles)


def loose_edges(edges: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """The edges (E, 2) that are not a side of any triangle."""
    edges = np.sort(np.asarray(edges, dtype=np.int64).reshape(-1, 2), axis=1)
    t = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    sides = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [0, 2]]]), axis=1)
    if not len(sides):
        return edges
    n = int(max(edges.max(initial=0), sides.max(initial=0))) + 1
    return edges[~np.isin(edges[:, 0] * n + edges[:, 1], sides[:, 0] * n + sides[:, 1])]


# -- dispatch -------------------------------------------------------------------------


def read_geometry(path: str) -> dict[str, np.ndarray]:
    """Read ``path`` by its extension (.obj, .ply, .off, .npz)."""
    ext = _extension(path, READ_FORMATS, "read")
    if not os.path.isfile(path):
        raise JobError(f"file not found: {path}")
    return {".obj": read_obj, ".ply": read_ply, ".off": read_off, ".npz": read_npz}[ext](path)


def write_mesh(
    path: str,
    vertices: np.ndarray,
    faces: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    colors: np.ndarray | None = None,
) -> None:
    """Write a mesh (or a point cloud, with ``faces=None``) by extension (.ply, .obj); creates parent folders.

    Vertex ``colors`` (V, 3) in [0, 1] are written to PLY only."""
    ext = _extension(path, WRITE_FORMATS, "write")
    if ext == ".ply":
        write_ply(path, vertices, faces, normals, colors)
    else:
        write_obj(path, vertices, faces, normals)
