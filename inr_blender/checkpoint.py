"""Save and load field checkpoints: plain dicts of tensors, lists, numbers and strings.

Loading uses ``torch.load(weights_only=True)``, which refuses arbitrary pickled
objects, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

import numpy as np
import torch
from torch import nn

from .context import JobError
from .fields import build_field
from .outputs import atomic_write


def save_checkpoint(ckpt: dict[str, Any], path: str) -> str:
    """Write ``ckpt`` atomically (:func:`~.outputs.atomic_write`); create parent folders. Returns the absolute path."""
    path = os.path.abspath(os.path.expanduser(path))
    try:
        with atomic_write(path) as fh:
            torch.save(ckpt, fh)
    except OSError as exc:
        raise JobError(f"cannot write the checkpoint to {path}: {exc.strerror or exc}") from None
    return path


def checkpoint_bytes(ckpt: dict[str, Any]) -> bytes:
    """The bytes of the file :func:`save_checkpoint` would write (to send a checkpoint over the wire)."""
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


Source = str | bytes | np.ndarray  # a path, or the file's bytes (raw or as a uint8 array)


def is_checkpoint(path: str) -> bool:
    """Whether the file ``path`` is a field checkpoint (one this project may write over)."""
    if not zipfile.is_zipfile(path):  # what torch.save writes; anything else is refused without loading it
        return False
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file, a foreign one, unreadable
        return False
    return isinstance(ckpt, dict) and "config" in ckpt and "state_dict" in ckpt


def read_checkpoint(source: Source, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint dict at a path or in bytes (tensors mapped to ``device``), or JobError."""
    fh: str | io.BytesIO
    if isinstance(source, (bytes, np.ndarray)):
        name, fh = "(sent with the job)", io.BytesIO(np.asarray(source, dtype=np.uint8).tobytes() if isinstance(source, np.ndarray) else source)
    else:
        name = fh = os.path.expanduser(source or "")
        if not name or not os.path.isfile(name):
            raise JobError(f"checkpoint not found: {name}")
    try:
        ckpt = torch.load(fh, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt file, or something that is not a plain checkpoint
        raise JobError(f"cannot read checkpoint {name}: {exc}") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise JobError(f"checkpoint {name} is not an inr_blender field checkpoint")
    return ckpt


def load_checkpoint(source: Source, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the field in a checkpoint (path or bytes) on ``device``, in eval mode; return (module, checkpoint dict)."""
    ckpt = read_checkpoint(source, device)
    try:
        field = build_field(ckpt["config"])
        field.load_state_dict(ckpt["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise JobError(f"the checkpoint does not match its network config: {exc}") from None
    return field.to(device).eval(), ckpt
