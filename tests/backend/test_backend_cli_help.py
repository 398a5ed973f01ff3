"""The command line's help says what the commands run: every default it quotes is the one the job resolves when the
option is left out (the command's preset applied), every file format it names comes from fileio, and fit-sdf and
fit-shape-space without options run their default presets."""

import argparse
import re

import pytest

from inr_blender.cli import _offered, _text, build_parser, default_preset
from inr_blender.fileio import READ_FORMATS, READ_TEXT, formats
from inr_blender.jobs import REGISTRY
from inr_blender.settings import presets

PARSER = build_parser()
COMMANDS = next(a for a in PARSER._actions if a.dest == "command").choices
JOBS = sorted(REGISTRY.names())


def options(job_name):
    """``{dest: action}`` of a job's command."""
    return {a.dest: a for a in COMMANDS[job_name]._actions}


def runs(job, **given):
    """The settings a command runs with the options ``given``: its default preset, then the job's resolution (on the
    CPU: a CUDA device scales the presets, and the help says so)."""
    if job.presets is not None:
        given["preset"] = default_preset(job, given)
    if "device" in given:
        return job.resolve(given)
    return {**job.resolve({**given, "device": "cpu"}), "device": job.resolve(given)["device"]}


def shown_default(help_text, variants=()):
    """The default the generated note of an option's help quotes: one value, or ``{variant: value}`` where it
    names variants; None: none."""
    notes = re.search(r"\(((?:default [^;)]*)?)(?:; [^;)]*)*\)$", help_text.replace("%%", "%"))
    if notes is None or not notes.group(1):
        return None
    text = notes.group(1)[len("default ") :]
    pairs = [p.split(" ", 1) for p in text.split(", ")]
    return dict(pairs) if pairs[0][0] in variants and all(len(p) == 2 for p in pairs) else text


@pytest.mark.parametrize("name", JOBS)
def test_every_quoted_default_is_what_the_command_runs(name):
    job = REGISTRY.get(name)
    variants = job.spec.variants
    choices = list(variants.sets()) if variants is not None else [None]
    by_variant = {c: runs(job, **({variants.key: c} if c else {})) for c in choices}
    plain = runs(job)
    acts = options(name)
    checked = 0
    for param in _offered(job):
        shown = shown_default(acts[param.name].help, choices)
        if param.name == "preset":  # what runs without --preset (and without --method)
            assert shown == plain["preset"] == job.cli.preset, (name, shown)
            checked += 1
            continue
        for choice, resolved in by_variant.items():
            if param.name not in resolved:  # another variant's setting
                continue
            expected = shown.get(choice) if isinstance(shown, dict) else shown
            value = resolved[param.name]
            if expected == "none" and "unset" in param.help:  # derived by the job where left unset
                continue
            if value is None or value == "":
                assert expected is None, (name, param.name, choice, shown)
            else:
                assert expected == _text(value), (name, param.name, choice, shown, value)
            checked += 1
        if param.default is not None:  # a default the help text quotes itself is the param's
            for quoted in re.findall(r"\(default:? ([\d.e+-]+)", param.help):
                assert float(quoted) == pytest.approx(float(param.default)), (name, param.name)
    if variants is not None:  # the variant the command runs without --method
        assert acts[variants.key].help.split("(default ", 1)[1].split()[0].rstrip(";") == plain[variants.key]
    for dest, action in acts.items():  # the command's own options (not params) quote their argparse defaults
        if action.help and dest not in {p.name for p in _offered(job)} and action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default {_text(action.default)})" in action.help, (name, dest)
    assert checked >= 1 or not _offered(job)


@pytest.mark.parametrize("name", JOBS)
def test_file_formats_in_the_help_come_from_fileio(name):
    job = REGISTRY.get(name)
    for action in COMMANDS[name]._actions:
        text = action.help or ""
        named = set(re.findall(r"\.(?:obj|ply|off|npz|ma|png|jpe?g)\b", text))
        if not named:
            continue
        if action.dest == "output" and job.cli.output_formats:  # what -o may be: the formats the command checks
            assert formats(tuple(job.cli.output_formats)) in text, (name, text)
            assert named <= set(job.cli.output_formats), (name, text)
        elif not action.option_strings:  # a geometry file to read: every format read_geometry reads, in its words
            assert READ_TEXT in text and set(READ_FORMATS) <= named, (name, text)


def test_fit_sdf_without_options_runs_the_fast_preset_and_says_so():
    fit = REGISTRY.get("fit_sdf")
    p = runs(fit)
    fast = presets.SDF[presets.SDF_DEFAULT].values
    assert presets.SDF_DEFAULT == "fast" and p["preset"] == "fast"
    assert {k: p[k] for k in fast} == fast  # hash grid, its levels, 500 steps, ...
    assert runs(fit, method="idf")["iterations"] == presets.DISPLACEMENT["fast"].values["iterations"]  # idf's fast
    igr = runs(fit, method="igr")  # another method than the preset's: that method's own settings
    assert igr["preset"] is None and (igr["iterations"], igr["width"]) == (fit.resolve({"method": "igr"})["iterations"], 512)
    assert runs(fit, preset="smooth")["method"] == "igr"
    help_text = " ".join(COMMANDS["fit_sdf"].format_help().split())
    assert "It runs the fast preset (Hash grid, 500 steps at most" in help_text
    assert "--method METHOD SDF method (default hashgrid (the fast preset's; igr with --preset custom)" in help_text


def test_fit_shape_space_without_options_runs_its_default_preset():
    space = REGISTRY.get("fit_shape_space")
    p = runs(space)
    assert p["preset"] == presets.SHAPE_SPACE_DEFAULT
    assert all(p[k] == v for k, v in presets.SHAPE_SPACE[presets.SHAPE_SPACE_DEFAULT].values.items())
    help_text = " ".join(COMMANDS["fit_shape_space"].format_help().split())
    assert f"It runs the {presets.SHAPE_SPACE_DEFAULT} preset" in help_text
    latent = presets.SHAPE_SPACE[presets.SHAPE_SPACE_DEFAULT].values["latent_size"]
    assert f"--latent-size INT Numbers per shape code (default {latent};" in help_text


def test_every_job_command_has_quiet():
    for name in JOBS:
        assert "quiet" in options(name), name
    assert build_parser().parse_args(["metrics", "a.ply", "b.ply", "-q"]).quiet
