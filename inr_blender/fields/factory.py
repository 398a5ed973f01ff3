"""Build a field network from a plain config dict (the dict stored in checkpoints)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .deepsdf import DeepSDFDecoder, LatentShape, ShapeSpace, decoder_options
from .displacement import DisplacementField, TransferredDetail
from .hashgrid import HashGridEncoding, HashGridSDF
from .igr import IGRNet
from .nerf import ClassicNeRF, FastNeRF
from .siren import Siren

# Published sizes: IGR 8 x 512 with a skip at layer 4; SIREN 3 hidden x 256;
# Instant-NGP's hash grid: 16 levels x 2 features, 2^19 entries, resolutions 16..2048
# (its SDF decoder is 64 wide; see fields/hashgrid.py for our softplus MLP and sphere base).
DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "igr": {"kind": "igr", "width": 512, "depth": 8, "beta": 100.0, "skip": None, "geometric_init": True, "init_radius": 0.5},
    "siren": {"kind": "siren", "width": 256, "depth": 3, "omega0": 30.0},
    "hashgrid": {"kind": "hashgrid", "levels": 16, "features_per_level": 2, "log2_table_size": 19,
                 "base_resolution": 16, "finest_resolution": 2048, "width": 64, "depth": 2, "beta": 100.0,
                 "init_radius": 0.5},
    # NeRF (Mildenhall 2020): 10 / 4 frequencies, 8 x 256 with the skip at layer 4. The fast field follows
    # Instant-NGP's NeRF (16 levels x 2, 2^19, 64-wide MLPs, 15 geometry features); see fitting/nerf.py.
    "nerf_classic": {"kind": "nerf_classic", "position_frequencies": 10, "direction_frequencies": 4, "width": 256,
                     "depth": 8, "skip": 4},
    "nerf_fast": {"kind": "nerf_fast", "levels": 16, "features_per_level": 2, "log2_table_size": 19, "base_resolution": 16,
                  "finest_resolution": 1024, "width": 64, "geometry_features": 15, "occupancy_resolution": 64},
    # Implicit displacement fields (Wang Yifan 2022): a SIREN base at omega 15 and a SIREN detail at omega 60,
    # nu = 0.05; the transfer holds the target's base and the source's base and detail (fields/displacement.py).
    "idf": {"kind": "idf", "base": {"kind": "siren", "width": 256, "depth": 3, "omega0": 15.0},
            "detail": {"kind": "siren", "width": 256, "depth": 3, "omega0": 60.0}, "nu": 0.05, "max_offset": 0.05},
    "idf_transfer": {"kind": "idf_transfer", "target_base": None, "source_base": None, "source_detail": None,
                     "nu": 0.05, "max_offset": 0.05, "strength": 1.0, "projection_steps": 5},
    # DeepSDF (Park 2019): 8 x 512 with weight normalisation, the input again at layer 4, dropout 0.2, codes of 256;
    # "output" 'occupancy' is the occupancy-network variant (Mescheder 2019). A latent shape is one decoded shape.
    "shape_space": {"kind": "shape_space", "num_shapes": 2, "latent_size": 256, "width": 512, "depth": 8, "skip": 4,
                    "dropout": 0.2, "weight_norm": True, "output": "sdf"},
    "latent_shape": {"kind": "latent_shape", "space": None},
}


def field_config(kind: str, **overrides: Any) -> dict[str, Any]:
    """A complete config for ``kind``: published defaults updated with ``overrides``.

    ``skip`` (IGR) is resolved to an explicit list so the stored config rebuilds
    exactly the same network.
    """
    if kind not in DEFAULT_CONFIGS:
        raise ValueError(f"unknown field kind {kind!r}; known: {', '.join(DEFAULT_CONFIGS)}")
    config = dict(DEFAULT_CONFIGS[kind])
    config.update({k: v for k, v in overrides.items() if k in config and v is not None})
    if kind == "igr" and config["skip"] is None:
        config["skip"] = [int(config["depth"]) // 2]
    return config


def build_field(config: dict[str, Any]) -> nn.Module:
    """Instantiate the network described by ``config`` (see :func:`field_config`)."""
    kind = config.get("kind")
    if kind == "igr":
        return IGRNet(
            width=int(config["width"]),
            depth=int(config["depth"]),
            beta=float(config["beta"]),
            skip=[int(s) for s in config["skip"]] if config.get("skip") is not None else None,
            geometric_init=bool(config.get("geometric_init", True)),
            init_radius=float(config.get("init_radius", 0.5)),
        )
    if kind == "siren":
        return Siren(width=int(config["width"]), depth=int(config["depth"]), omega0=float(config["omega0"]))
    if kind == "hashgrid":
        return HashGridSDF(_encoding(config), width=int(config["width"]), depth=int(config["depth"]), beta=float(config["beta"]), init_radius=float(config["init_radius"]))
    if kind == "nerf_classic":
        return ClassicNeRF(int(config["position_frequencies"]), int(config["direction_frequencies"]), int(config["width"]), int(config["depth"]), int(config["skip"]))
    if kind == "nerf_fast":
        return FastNeRF(_encoding(config), int(config["geometry_features"]), int(config["width"]), int(config["occupancy_resolution"]))
    if kind == "idf":
        return DisplacementField(build_field(config["base"]), build_field(config["detail"]), float(config["nu"]),
                                 float(config["max_offset"]))
    if kind == "idf_transfer":
        return TransferredDetail(
            build_field(config["target_base"]), build_field(config["source_base"]), build_field(config["source_detail"]),
            float(config["nu"]), float(config["max_offset"]), float(config["strength"]), int(config["projection_steps"]))
    if kind == "shape_space":
        return ShapeSpace(int(config["num_shapes"]), int(config["latent_size"]), **decoder_options(config))
    if kind == "latent_shape":
        space = config["space"]
        return LatentShape(DeepSDFDecoder(int(space["latent_size"]), **decoder_options(space)), torch.zeros(int(space["latent_size"])))
    raise ValueError(f"unknown field kind {kind!r}; known: {', '.join(DEFAULT_CONFIGS)}")


def _encoding(config: dict[str, Any]) -> HashGridEncoding:
    return HashGridEncoding(
        levels=int(config["levels"]),
        features_per_level=int(config["features_per_level"]),
        log2_table_size=int(config["log2_table_size"]),
        base_resolution=int(config["base_resolution"]),
        finest_resolution=int(config["finest_resolution"]),
    )
