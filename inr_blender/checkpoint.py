"""Save and load field checkpoints: plain dicts of tensors, lists, numbers and strings.

Loading uses ``torch.load(weights_only=True)``, which refuses arbitrary pickled
objects, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from torch import nn

from .context import JobError
from .fields import build_field


def save_checkpoint(ckpt: dict[str, Any], path: str) -> str:
    """Write ``ckpt`` atomically (temporary file, then rename); create parent folders. Returns the absolute path."""
    path = os.path.abspath(os.path.expanduser(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(ckpt, fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_checkpoint(path: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path`` (tensors mapped to ``device``), or JobError."""
    path = os.path.expanduser(path or "")
    if not path or not os.path.isfile(path):
        raise JobError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt file, or something that is not a plain checkpoint
        raise JobError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise JobError(f"{path} is not an inr_blender field checkpoint")
    return ckpt


def load_checkpoint(path: str, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the field stored at ``path`` on ``device`` (in eval mode); return (module, checkpoint dict)."""
    ckpt = read_checkpoint(path, device)
    try:
        field = build_field(ckpt["config"])
        field.load_state_dict(ckpt["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise JobError(f"checkpoint {path} does not match its network config: {exc}") from None
    return field.to(device).eval(), ckpt
