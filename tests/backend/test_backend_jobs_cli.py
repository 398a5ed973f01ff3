"""The job registry and the command line generated from it: every job a command, its options from its spec."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from inr_blender.cli import build_parser
from inr_blender.context import JobContext, JobError
from inr_blender.fileio import write_mesh
from inr_blender.jobs import JOBS, REGISTRY, job
from inr_blender.settings import presets
from inr_blender.settings.spec import Param, Spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "inr_blender", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def commands(parser):
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices


def test_every_registered_job_is_a_command_with_dashes_and_underscores():
    names = commands(build_parser())
    assert len(JOBS) >= 16 and "serve" in names
    for name in JOBS:
        assert name in names and name.replace("_", "-") in names
        assert names[name] is names[name.replace("_", "-")]
    for old in (
        "fit-sdf",
        "fit-nerf",
        "render-view",
        "extract",
        "skeleton",
        "isopoints",
        "transfer",
        "metrics",
        "fit-shape-space",
        "reconstruct",
        "interpolate",
    ):
        assert old in names


def test_help_shows_each_params_help_default_and_bounds():
    out = cli("skeleton", "--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    delta = REGISTRY.get("extract_skeleton").spec["delta"]
    assert f"--delta FLOAT {delta.help} (default {delta.default:g}; positive)" in text
    assert "--surface-samples" in text and "at least 4" in text  # the old spelling of num_surface_samples
    fit = " ".join(cli("fit-sdf", "--help").stdout.split())
    widths = {
        m: next(q.default for q in ps if q.name == "width")
        for m, ps in REGISTRY.get("fit_sdf").spec.variants.sets().items()
        if any(q.name == "width" for q in ps)
    }
    assert len(set(widths.values())) > 1  # a default per method, each named
    assert f"--width INT Hidden units per layer (default {', '.join(f'{m} {w}' for m, w in widths.items())}; positive; at most 4096)" in fit
    assert "--preset STR" in fit and "one of fast, detailed, smooth, skeleton, custom" in fit


def test_old_option_spellings_reach_their_params():
    args = build_parser().parse_args(["fit-sdf", "in.ply", "-o", "f.pt", "--lr", "0.01", "--tolerance", "0", "--base-only"])
    assert args.learning_rate == "0.01" and args.convergence_tolerance == "0" and getattr(args, "flag:base-only")
    args = build_parser().parse_args(["isopoints", "f.pt", "-o", "p.ply", "--no-resample"])
    assert args.resample is False and args.field == "f.pt" and not hasattr(args, "checkpoint_path")  # a positional


def test_a_spec_refuses_an_unknown_key_and_a_bad_type_in_one_line(tmp_path):
    with pytest.raises(JobError, match=r"^unknown extract_mesh parameter\(s\): resoluton$"):
        JOBS["extract_mesh"]({"checkpoint_path": "f.pt", "resoluton": 64}, {}, JobContext())
    with pytest.raises(JobError, match=r"^parameter count must be an integer, got 'many'$"):
        JOBS["sample_isopoints"]({"checkpoint_path": "f.pt", "count": "many"}, {}, JobContext())
    bad = cli("extract", "f.pt", "-o", "m.ply", "--resolution", "many", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr == "error: parameter resolution must be an integer, got 'many'\n"
    write_mesh(str(tmp_path / "in.ply"), np.eye(3), None)
    unknown = cli("fit-sdf", "in.ply", "-o", "f.pt", "--preset", "quick", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: unknown preset 'quick'")


def test_a_registered_job_gets_resolved_settings_and_a_command():
    seen = []

    @job(
        Spec(
            "echo_settings",
            (Param("steps", 3, "Steps", positive=True), Param("colour", [0.5, 0.5, 0.5], "RGB", kind=list, length=3, minimum=0.0, maximum=1.0)),
        )
    )
    def echo(p, arrays, ctx):
        seen.append(p)
        return dict(p), {}

    try:
        result, _ = JOBS["echo_settings"]({"steps": "7"}, {}, JobContext())
        assert result == seen[0] == {"steps": 7, "colour": [0.5, 0.5, 0.5], "device": "auto"}
        with pytest.raises(JobError, match=r"colour must be 3 numbers in \[0, 1\]"):
            JOBS["echo_settings"]({"colour": [1, 2, 3]}, {}, JobContext())
        args = build_parser().parse_args(["echo-settings", "--steps", "9", "--colour", "1", "0", "0"])
        assert (args.steps, args.colour) == ("9", ["1", "0", "0"])
    finally:
        REGISTRY.remove("echo_settings")
    assert "echo_settings" not in JOBS


def test_a_job_without_a_command_adapter_prints_its_result_as_json():
    out = cli("info", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["device"] == "cpu" and result["torch_version"] == torch.__version__


def test_presets_fill_in_what_the_caller_does_not_set():
    fit = REGISTRY.get("fit_sdf")
    fast = fit.resolve({"preset": "fast", "iterations": 7, "device": "cpu"})  # (a GPU's Fast preset: the test below)
    assert (fast["method"], fast["iterations"], fast["levels"]) == ("hashgrid", 7, presets.SDF["fast"].values["levels"])
    idf = fit.resolve({"method": "idf", "preset": "detailed"})  # a displacement field's presets
    assert (idf["iterations"], idf["detail_width"]) == (2000, presets.DISPLACEMENT["detailed"].values["detail_width"])
    assert fit.resolve({"preset": "custom", "method": "igr"})["iterations"] == fit.resolve({"method": "igr"})["iterations"]
    space = REGISTRY.get("fit_shape_space").resolve({"preset": "fast"})
    assert space["latent_size"] == presets.SHAPE_SPACE["fast"].values["latent_size"]


@pytest.mark.parametrize("name", ["fast", "detailed"])
def test_sdf_presets_scale_on_a_cuda_device_only(name):
    row = presets.SDF[name].values
    cuda = presets.apply(presets.SDF, name, {}, "cuda")
    assert cuda == presets.apply(presets.SDF, name, {}, "cuda:1") and cuda["method"] == "hashgrid"
    assert cuda["batch_size"] >= 8 * row["batch_size"] and cuda["log2_table_size"] > row["log2_table_size"]
    assert cuda["finest_resolution"] > row["finest_resolution"] and cuda["iterations"] == row["iterations"]
    for device in ("cpu", "mps"):
        assert presets.apply(presets.SDF, name, {}, device) == row
    given = {"batch_size": 1000, "levels": 8, "learning_rate": None}  # None: not set
    mine = presets.apply(presets.SDF, name, given, "cuda")
    assert (mine["batch_size"], mine["levels"], mine["log2_table_size"]) == (1000, 8, cuda["log2_table_size"])
    assert presets.apply(presets.SDF, "custom", given, "cuda") == given  # custom: no preset, no scaling
    assert presets.apply(presets.DISPLACEMENT, name, {}, "cuda") == presets.DISPLACEMENT[name].values  # SDF rows only


def test_the_fast_radiance_field_takes_instant_ngp_settings_on_cuda_only():
    fit = REGISTRY.get("fit_nerf")
    cpu = fit.resolve({"preset": "fast", "device": "cpu"})
    assert cpu == {**fit.resolve({"device": "cpu"}), "preset": "fast"}  # on the CPU, the model's own defaults
    cuda = presets.apply(presets.RADIANCE, "fast", {}, "cuda")
    assert cuda["model"] == "fast" and cuda["samples_per_step"] >= 4 * cpu["samples_per_step"]
    assert cuda["occupancy_resolution"] > cpu["occupancy_resolution"] and cuda["march_steps"] > cpu["march_steps"]
    assert presets.apply(presets.RADIANCE, "fast", {"march_steps": 300}, "cuda")["march_steps"] == 300  # the caller's wins
    assert presets.apply(presets.RADIANCE, "classic", {}, "cuda") == {"model": "classic"}  # classic: its defaults
    classic = fit.resolve({"preset": "fast", "model": "classic", "device": "cpu"})  # a model named over the preset's
    assert classic["model"] == "classic" and "samples_per_step" not in classic


def test_the_worker_scales_presets_for_the_device_it_resolves():
    from inr_blender.jobs.registry import preset_device

    assert preset_device("cpu") == "cpu" and preset_device("auto") == preset_device(None)
    fit = REGISTRY.get("fit_sdf")
    on_cpu = fit.resolve({"preset": "detailed", "device": "cpu"})
    assert on_cpu["batch_size"] == presets.SDF["detailed"].values["batch_size"]
    here = fit.resolve({"preset": "detailed", "batch_size": 300})  # device auto: whatever this machine has
    assert here["batch_size"] == 300 and here["preset"] == "detailed"
    expected = presets.apply(presets.SDF, "detailed", {}, preset_device("auto"))
    assert here["log2_table_size"] == expected["log2_table_size"]


def test_fit_sdf_runs_the_fast_preset_when_none_is_named(tmp_path):
    d = np.random.default_rng(0).normal(size=(2000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    write_mesh(str(tmp_path / "cloud.ply"), 0.5 * d, None, d)
    fit = cli("fit-sdf", "cloud.ply", "-o", "f.pt", "--iterations", "5", "--batch-size", "256", "--device", "cpu", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    assert "fitted HASHGRID" in fit.stdout
    ckpt = torch.load(tmp_path / "f.pt", weights_only=True)
    assert ckpt["params"]["levels"] == presets.SDF["fast"].values["levels"] and ckpt["iterations_run"] == 5
