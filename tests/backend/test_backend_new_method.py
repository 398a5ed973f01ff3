"""The recipe of fitting/methods/__init__.py, followed from a test file: a new SDF method with its own settings,
field kind, range rule and loss, registered here, fitted through the fit_sdf job, extracted through extract_mesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from inr_blender.context import JobContext, JobError
from inr_blender.fields import FIELD_KINDS, Field, field_config, field_kind, value_and_gradient
from inr_blender.fitting.methods import METHODS, SdfMethod, register
from inr_blender.geometry.primitives import icosphere
from inr_blender.geometry.sampling import uniform_samples
from inr_blender.jobs import JOBS
from inr_blender.ranges.affine import concat
from inr_blender.ranges.encodings import norm
from inr_blender.ranges.rules import LAYER_RULES, layer_rule, propagate
from inr_blender.settings.sdf import MethodSettings, run
from inr_blender.settings.spec import Param, params

NAME, KIND = "tiny_sphere", "tiny_sphere_mlp"


class TinySphere(Field):
    """|x| - radius (radius learnt) plus a small softplus MLP's residual, whose last layer starts at zero."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.radius = nn.Parameter(torch.tensor(0.5))
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.Softplus(beta=100.0), nn.Linear(hidden, 1))
        with torch.no_grad():
            self.mlp[-1].weight.zero_()
            self.mlp[-1].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(x.square().sum(dim=-1) + 1e-12) - self.radius + self.mlp(x).squeeze(-1)


def _check(p: dict) -> None:
    if p["hidden"] > 64:
        raise JobError("a tiny sphere needs hidden <= 64")


SETTINGS = MethodSettings(
    NAME,
    "Tiny Sphere",
    "A learnt sphere plus a small residual MLP (a test of the method recipe)",
    params(
        run(150, 512, 1e-2, 0, 1.0, 0.0),
        Param("hidden", 16, "Hidden units", positive=True),
        Param("w_eikonal", 0.1, "Weight of the eikonal term", minimum=0.0),
    ),
    needs_normals=True,
    normals_subject="The tiny sphere",
    check=_check,
)


@pytest.fixture
def tiny_method():
    """Registers the field kind, its range rule and the method; unregisters all three afterwards."""
    field_kind(KIND, {"hidden": 16})(lambda config: TinySphere(int(config["hidden"])))

    @layer_rule(TinySphere)
    def _range(net: TinySphere, x):
        sphere = norm(x, eps=1e-12)
        one = torch.ones(1, 2, dtype=sphere.center.dtype, device=sphere.center.device)
        radius = net.radius.detach().to(one.dtype).reshape(1)
        return concat([propagate(net.mlp, x), sphere]).linear(one, -radius)

    @register
    class Tiny(SdfMethod):
        settings = SETTINGS

        @classmethod
        def field_config(cls, p):
            return field_config(KIND, hidden=p["hidden"])

        def loss(self, field, batch, step):
            x = torch.cat([batch.on, uniform_samples(batch.size, 1.0, self.device)])
            f, g = value_and_gradient(field, x, create_graph=True)
            return f[: len(batch.on)].abs().mean() + self.p["w_eikonal"] * (g.norm(dim=-1) - 1.0).square().mean()

    yield Tiny
    METHODS.remove(NAME)
    FIELD_KINDS.remove(KIND)
    LAYER_RULES.pop(TinySphere, None)


def test_a_method_registered_from_a_test_fits_and_extracts(tiny_method, tmp_path):
    vertices, faces = icosphere(1.0, 3)
    vertices = vertices + [2.0, 0.0, -1.0]  # away from the origin: the job's local frame must undo it
    path = str(tmp_path / "tiny.pt")
    ctx = JobContext()
    with pytest.raises(JobError, match="hidden <= 64"):  # the method's own check, through the job
        JOBS["fit_sdf"]({"method": NAME, "hidden": 100, "checkpoint_path": path}, {"vertices": vertices, "faces": faces}, ctx)
    with pytest.raises(JobError, match="The tiny sphere needs oriented normals"):  # the refusal from its settings
        JOBS["fit_sdf"]({"method": NAME, "checkpoint_path": path, "device": "cpu"}, {"points": vertices}, ctx)
    result, _ = JOBS["fit_sdf"](
        {"method": NAME, "checkpoint_path": path, "num_samples": 5000, "device": "cpu"}, {"vertices": vertices, "faces": faces}, ctx
    )
    assert result["method"] == NAME and result["iterations_run"] == 150
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["config"] == {"kind": KIND, "hidden": 16} and ckpt["params"]["w_eikonal"] == 0.1
    for method in ("sparse", "guaranteed"):  # the guaranteed extraction uses the range rule registered above
        info, mesh = JOBS["extract_mesh"]({"checkpoint_path": path, "resolution": 32, "space": "world", "method": method, "device": "cpu"}, {}, ctx)
        radii = np.linalg.norm(mesh["vertices"] - [2.0, 0.0, -1.0], axis=1)
        assert info["num_faces"] > 500
        assert np.abs(radii - 1.0).max() < 0.03, (method, radii.min(), radii.max())


def test_unregistered_methods_are_refused(tiny_method):
    METHODS.remove(NAME)
    with pytest.raises(JobError, match="unknown SDF method 'tiny_sphere'"):
        JOBS["fit_sdf"]({"method": NAME, "checkpoint_path": "/tmp/never.pt"}, {"points": np.zeros((10, 3))}, JobContext())
    METHODS.add(NAME, tiny_method)  # the fixture removes it again
