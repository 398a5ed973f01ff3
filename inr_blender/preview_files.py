"""Live previews as files, for the command line: ``<output stem>.preview.ply`` (a signed distance field's coarse
surface, in world space) or ``<output stem>.preview.png`` (a radiance field's view), replaced atomically by each
newer preview, so a viewer that reloads the file never reads half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .context import PreviewSink
from .outputs import atomic_write
from .settings.preview import PREVIEW_EVERY

SUFFIXES = {"mesh": ".preview.ply", "image": ".preview.png"}


def preview_path(output: str, kind: str) -> str:
    """Where the previews of a fit writing ``output`` go."""
    return os.path.splitext(output)[0] + SUFFIXES[kind]


def file_sink(output: str | None, every: Any, say: Callable[[str], None] = print) -> PreviewSink | None:
    """A preview sink that writes each preview beside ``output`` (see :func:`preview_path`) and says so once
    (``say``: e.g. the progress bar's ``note``); None when previews are off (``every``: the ``preview_every`` the
    command line was given, or None) or nothing is written."""
    seconds = PREVIEW_EVERY.coerce(every)
    if not output or not seconds:
        return None
    told: set[str] = set()

    def write(kind: str, arrays: dict[str, Any], info: dict[str, Any]) -> None:
        path = preview_path(output, kind)
        if kind == "mesh":
            from .fileio import write_ply

            vertices = np.asarray(arrays["vertices"], dtype=np.float64) * info["scale"] + np.asarray(info["center"])
            write_ply(path, vertices.astype(np.float32), arrays["faces"])
        else:
            from PIL import Image

            with atomic_write(path) as fh:
                Image.fromarray(np.asarray(arrays["rgb"], dtype=np.uint8)).save(fh, format="PNG")
        if path not in told:
            told.add(path)
            say(f"preview at step {info['step']}: {path} (replaced by each newer one)")

    return write
