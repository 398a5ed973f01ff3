"""Networks, their initialisations, and checkpoints."""

import json
import math

import pytest
import torch

from inr_blender.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields import build_field, field_config
from inr_blender.fields.igr import IGRNet
from inr_blender.jobs import JOBS


def test_geometric_init_approximates_the_sphere_sdf():
    torch.manual_seed(0)
    net = build_field(field_config("igr", width=256, depth=6, init_radius=0.5))
    x = torch.rand(20_000, 3) * 2 - 1
    with torch.no_grad():
        f = net(x)
    r = x.norm(dim=1)
    # The init is exact only for infinite width; at 256 wide the field is a
    # slightly distorted |x| - 0.5: strongly correlated with |x|, right sign away
    # from the sphere, zero level near radius 0.5.
    assert torch.corrcoef(torch.stack([f, r]))[0, 1] > 0.9
    far = (r - 0.5).abs() > 0.2
    assert ((f > 0) == (r > 0.5))[far].float().mean() > 0.98
    assert (f - (r - 0.5)).abs().mean() < 0.25
    along = torch.linspace(0, 1, 201)[:, None] * torch.tensor([[1.0, 0.0, 0.0]])
    with torch.no_grad():
        g = net(along)
    crossing = along[int(torch.nonzero(g > 0)[0]), 0]
    assert 0.3 < crossing < 0.7


def test_igr_layout_skip_and_softplus():
    net = IGRNet(width=64, depth=4, beta=100)
    assert net.skip == [2]
    assert [layer.out_features for layer in net.layers] == [64, 61, 64, 64, 1]
    assert isinstance(net.activation, torch.nn.Softplus) and net.activation.beta == 100
    assert net(torch.zeros(5, 3)).shape == (5,)


def test_siren_published_init():
    torch.manual_seed(0)
    net = build_field(field_config("siren", width=256, depth=3))
    first, *rest = net.layers
    assert len(net.layers) == 5  # input sine layer, 3 hidden sine layers, linear output
    assert first.weight.abs().max() <= 1 / 3
    assert first.weight.abs().max() > 0.9 / 3  # uniform over the whole interval
    for layer in rest:
        bound = math.sqrt(6 / layer.in_features) / 30
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound


def test_unknown_field_kind():
    with pytest.raises(ValueError, match="unknown field kind"):
        build_field({"kind": "nerf"})


def _tiny_checkpoint():
    torch.manual_seed(0)
    config = field_config("igr", width=16, depth=2)
    net = build_field(config)
    ckpt = {
        "config": config,
        "state_dict": {k: v.clone() for k, v in net.state_dict().items()},
        "center": [1.0, 2.0, 3.0],
        "scale": 0.5,
        "loss_history": [[1, 0.5], [2, 0.25]],
        "method": "igr",
    }
    return net, ckpt


def test_checkpoint_round_trip_with_weights_only(tmp_path, monkeypatch):
    net, ckpt = _tiny_checkpoint()
    path = save_checkpoint(ckpt, str(tmp_path / "deep" / "field.pt"))
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["field.pt"]  # no temporary left behind
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    loaded, back = load_checkpoint(path, "cpu")
    assert calls and all(c.get("weights_only") is True for c in calls)
    assert not loaded.training
    x = torch.rand(10, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))
    assert back["center"] == [1.0, 2.0, 3.0] and back["loss_history"][1] == [2, 0.25]


class _Payload:
    """Any class: pickling it stores a reference that weights_only loading refuses."""


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "state_dict": {}, "payload": _Payload()}, path)
    with pytest.raises(JobError, match="cannot read checkpoint"):
        read_checkpoint(str(path))


def test_missing_checkpoint(tmp_path):
    path = str(tmp_path / "nope.pt")
    with pytest.raises(JobError, match=f"checkpoint not found: {path}"):
        load_checkpoint(path, "cpu")
    with pytest.raises(JobError, match="checkpoint not found"):
        JOBS["extract_mesh"]({"checkpoint_path": path, "resolution": 16}, {}, JobContext())


def test_info_job():
    params, arrays = JOBS["info"]({"device": "cpu"}, {}, JobContext())
    assert params["device"] == "cpu" and arrays == {}
    json.dumps(params, allow_nan=False)
    assert params["torch_version"] == torch.__version__
    assert params["memory_bytes"] > 0
    assert set(params) == {
        *("backend_version", "torch_version", "torch_cuda", "python", "device", "device_name", "device_memory_bytes"),
        *("cuda_available", "mps_available", "memory_bytes"),
    }
    assert params["device_name"] and params["device_memory_bytes"] > 0
    measured, _ = JOBS["info"]({"device": "cpu", "throughput": True}, {}, JobContext())
    assert measured["fast_steps_per_second"] > 0  # a Fast-preset fit timed for about a second
    with pytest.raises(JobError, match="device"):
        JOBS["info"]({"device": "tpu"}, {}, JobContext())


def test_the_field_interface_says_what_the_values_are():
    """Distance fields allow Lipschitz culling; occupancy logits and densities do not; displacement fields have a base."""
    from inr_blender.fields import is_distance_field, smooth_base
    from inr_blender.fields.deepsdf import DeepSDFDecoder, LatentShape
    from inr_blender.render.surface import DensitySurface

    siren = build_field(field_config("siren", width=8, depth=1))
    assert is_distance_field(siren) and smooth_base(siren) is None
    occupancy = LatentShape(DeepSDFDecoder(4, width=16, depth=2, output="occupancy"), torch.zeros(4))
    assert not is_distance_field(occupancy) and occupancy.output == "occupancy"
    assert is_distance_field(LatentShape(DeepSDFDecoder(4, width=16, depth=2), torch.zeros(4)))
    nerf = build_field(field_config("nerf_classic", width=16, depth=2, skip=1))
    assert not is_distance_field(DensitySurface(nerf, 10.0))
    idf = build_field(field_config("idf", base=field_config("siren", width=8, depth=1), detail=field_config("siren", width=8, depth=1)))
    transfer = build_field(
        field_config(
            "idf_transfer",
            target_base=field_config("siren", width=8, depth=1),
            source_base=field_config("siren", width=8, depth=1),
            source_detail=field_config("siren", width=8, depth=1),
        )
    )
    assert smooth_base(idf) is idf.base and smooth_base(transfer) is transfer.target_base
    x = torch.rand(5, 3) * 2 - 1
    assert idf(x).shape == (5,) and transfer(x).shape == (5,) and occupancy(x).shape == (5,)
