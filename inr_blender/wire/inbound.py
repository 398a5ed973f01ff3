"""What a client accepts of a worker's frames: each job event checked and reduced to what a job reads.

The worker's frames are untrusted (a remote worker may be anyone's): a field of the wrong type, a number that is
not finite, a preview whose faces do not index its vertices raise :class:`ProtocolError`, which ends that
connection with one line (see :mod:`.client`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .protocol import ERROR, MAX_PREVIEW_SIDE, PREVIEW, PREVIEW_KINDS, PROGRESS, RESULT, ProtocolError, one_line


def _number(header: dict[str, Any], key: str, optional: bool = False) -> float | None:
    value = header.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError(f"{header['type']} field {key!r} is not a finite number")
    return value


def checked_event(header: dict[str, Any]) -> dict[str, Any] | None:
    """A job's event from the worker, checked and reduced to what the job reads (None: a kind the job ignores);
    ProtocolError when its fields have the wrong types."""
    kind = header["type"]
    if kind == PROGRESS:
        step, total = _number(header, "step"), _number(header, "total")
        assert step is not None and total is not None
        if step < 0 or total < 0:
            raise ProtocolError("progress with a negative step or total")
        message = header.get("message") or ""
        if not isinstance(message, str):
            raise ProtocolError("progress field 'message' is not text")
        event = {"type": kind, "step": int(step), "total": int(total), "loss": _number(header, "loss", True), "message": one_line(message, 200)}
        event["psnr"] = _number(header, "psnr", True)
        return event
    if kind == PREVIEW:
        return _checked_preview_event(header)
    if kind == RESULT:
        params = header.get("params") or {}
        if not isinstance(params, dict):
            raise ProtocolError("result field 'params' is not an object")
        return {"type": kind, "params": params}
    if kind == ERROR:
        message, reason = header.get("message"), header.get("kind")
        if not isinstance(message, str) or not isinstance(reason, str | None):
            raise ProtocolError("error fields 'message' and 'kind' are not text")
        return {"type": kind, "kind": reason, "message": one_line(message) or "the backend reported an error"}
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _checked_preview_event(header: dict[str, Any]) -> dict[str, Any]:
    """A PREVIEW frame's kind and info, reduced to the facts a client reads (numbers, and a mesh's frame)."""
    kind, info = header.get("kind"), header.get("info")
    if kind not in PREVIEW_KINDS or not isinstance(info, dict):
        raise ProtocolError(f"a preview of unknown kind {one_line(kind, 40)!r}, or without info")
    facts: dict[str, Any] = {}
    for key, required in (("step", True), ("total", True), ("psnr", False), ("seconds", False)):
        value = info.get(key)
        if not _finite(value) and (required or value is not None):
            raise ProtocolError(f"preview info {key!r} is not a finite number")
        facts[key] = value
    facts["step"], facts["total"] = int(facts["step"]), int(facts["total"])
    if kind == "mesh":
        center: Any = info.get("center")
        scale: Any = info.get("scale")
        if not (isinstance(center, list) and len(center) == 3 and all(map(_finite, center)) and _finite(scale) and scale > 0):
            raise ProtocolError("a mesh preview needs its field's centre (3 finite numbers) and a positive scale")
        facts["center"], facts["scale"] = [float(c) for c in center], float(scale)
    return {"type": PREVIEW, "kind": kind, "info": facts}


def checked_preview(kind: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A preview's arrays (PREVIEW_KINDS), checked: shapes, dtypes, finite vertices, faces that index them, image
    sizes; ProtocolError otherwise."""
    missing = [name for name in PREVIEW_KINDS[kind] if name not in arrays]
    if missing:
        raise ProtocolError(f"a {kind} preview without {', '.join(missing)}")
    if kind == "image":
        rgb = arrays["rgb"]
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or not 0 < max(rgb.shape[:2]) <= MAX_PREVIEW_SIDE or not min(rgb.shape[:2]):
            raise ProtocolError(f"an image preview must be uint8 (H, W, 3) of at most {MAX_PREVIEW_SIDE} pixels a side")
        return {"rgb": rgb}
    vertices, faces = arrays["vertices"], arrays["faces"]
    if vertices.dtype.kind != "f" or vertices.ndim != 2 or vertices.shape[1] != 3 or not np.isfinite(vertices).all():
        raise ProtocolError("a mesh preview's vertices must be finite floats (V, 3)")
    if faces.dtype.kind not in "iu" or faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and not 0 <= faces.min() <= faces.max() < len(vertices)):
        raise ProtocolError("a mesh preview's faces must be integers (F, 3) indexing its vertices")
    return {"vertices": vertices.astype(np.float32, copy=False), "faces": faces.astype(np.int32, copy=False)}
