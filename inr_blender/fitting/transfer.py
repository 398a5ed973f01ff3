"""Detail transfer: the detail of one displacement field on the base of another field, as a new field checkpoint.

The source must be a displacement field (``fit_sdf`` with ``method`` 'idf'); the
target may be any signed distance field: a displacement field gives its base, a
transfer result its target base, any other SDF is the base itself. The result
lives in the target's frame (its center and scale) and is an ordinary SDF
checkpoint (kind ``idf_transfer``, see :class:`..fields.displacement.TransferredDetail`),
so every SDF job (extraction, iso-points, skeletons) works on it.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from .. import __version__
from ..context import JobError
from ..fields import build_field, field_config
from .sdf import CHECKPOINT_FORMAT, CHECKPOINT_VERSION


def base_of(ckpt: dict[str, Any], role: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state dict) of the smooth base of a field checkpoint used as ``role``."""
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise JobError(f"the {role} is not a signed distance field")
    config, state = ckpt["config"], ckpt["state_dict"]
    prefix = {"idf": "base", "idf_transfer": "target_base"}.get(config.get("kind"))
    if prefix is None:
        return config, state
    return config[prefix], _part(state, prefix)


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}


def transfer_detail(source: dict[str, Any], target: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint of ``target``'s base displaced by ``source``'s detail (both checkpoint dicts).

    ``p``: the settings of :data:`inr_blender.settings.transfer.SPEC`, resolved (``nu`` 0: the source's).
    """
    if source.get("format") != CHECKPOINT_FORMAT or source["config"].get("kind") != "idf":
        raise JobError("the detail source is not a displacement field: fit it with Fit Displacement Field (method 'idf')")
    target_config, target_state = base_of(target, "target")
    src = source["config"]
    nu = p["nu"] if p["nu"] > 0 else float(src["nu"])
    config = field_config(
        "idf_transfer",
        target_base=target_config,
        source_base=src["base"],
        source_detail=src["detail"],
        nu=nu,
        max_offset=float(src["max_offset"]),
        strength=p["strength"],
        projection_steps=p["projection_steps"] if p["mode"] == "projected" else 0,
    )
    field = build_field(config)
    state = {f"target_base.{k}": v for k, v in target_state.items()}
    state.update({f"source_{k}": v for k, v in source["state_dict"].items()})  # base.* and detail.*
    try:
        field.load_state_dict(state)
    except RuntimeError as exc:
        raise JobError(f"the fields do not match their configs: {exc}") from None
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "backend_version": __version__,
        "method": "idf_transfer",
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in field.state_dict().items()},
        "center": list(target["center"]),
        "scale": float(target["scale"]),
        "params": {**p, "nu": nu},
        "source_method": source.get("method"),
        "target_method": target.get("method"),
        "created": time.time(),
    }
