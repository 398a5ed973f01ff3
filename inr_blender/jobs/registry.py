"""The job registry: each job is registered where it is defined, with its declared settings and command line.

A job is a function ``(p, arrays, ctx) -> (result, arrays)`` whose ``p`` are its settings as its
:class:`~inr_blender.settings.spec.Spec` resolved them: coerced, bounded, defaulted, unknown keys refused.
The registry's runner resolves them once; the job never checks them again::

    @job(Spec("extract_mesh", params(CHECKPOINT, DEVICE, Param("resolution", 128, ...))), cli=Command(...))
    def extract_mesh(p, arrays, ctx): ...

``JOBS`` maps each name to its runner ``(params, arrays, ctx) -> (result, arrays)``: what the worker calls.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..context import JobContext, JobError
from ..settings import presets as preset_tables
from ..settings.spec import Param, Registry, Spec, params

Arrays = dict[str, np.ndarray]
Result = tuple[dict[str, Any], Arrays]
JobFn = Callable[[dict[str, Any], Arrays, JobContext], Result]

DEVICE = Param("device", "auto", "Where to compute", choices=("auto", "cpu", "cuda", "mps"))


@dataclass(frozen=True)
class Positional:
    """A positional command-line argument: its value goes to the param ``param``, or only to the command's
    ``read``/``write`` (``param`` empty). ``nargs`` as argparse's."""

    name: str
    help: str
    param: str = ""
    nargs: str | None = None
    kind: type = str


@dataclass(frozen=True)
class Command:
    """What the command line of a job needs beyond its params (which become ``--options`` by themselves).

    ``names``: the command's other names (``extract`` for ``extract_mesh``). ``positionals``: positional
    arguments. ``output``: help of ``-o/--output`` (required when given); ``output_param`` sends it as that param.
    ``output_formats``: the extensions ``write`` can write (``output_default`` stands for none); the CLI refuses any
    other, and an output it could not write, before the job runs.
    ``options``: other spellings of params (``{"lr": "learning_rate"}``) and flags that set params (``{"base-only":
    ({"phase_base": 1.0, "phase_detail": 1.0}, help)}``). ``fixed``: params the command always sends
    (``{"space": "world"}``); ``hidden``: params it does not offer (``read`` sets them). ``extra``: argparse
    options that ``read``/``write`` use (name -> argparse keywords). ``read(args, params) -> (params, arrays)`` reads the input files;
    ``write(args, result, arrays)`` writes the output files and prints the summary line. ``preset``: the preset the
    command runs when ``--preset`` is not given (a job called without one runs its params' defaults), unless the
    variant chosen (``--method``) is not the one that preset runs.
    """

    names: tuple[str, ...] = ()
    positionals: tuple[Positional, ...] = ()
    output: str = ""
    output_param: str = ""
    output_formats: tuple[str, ...] = ()
    output_default: str = ""
    preset: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    read: Callable[[argparse.Namespace, dict[str, Any]], tuple[dict[str, Any], Arrays]] | None = None
    write: Callable[[argparse.Namespace, dict[str, Any], Arrays], None] | None = None


@dataclass(frozen=True)
class Job:
    """A registered job: its function, its settings and its command line."""

    name: str
    spec: Spec
    fn: JobFn
    cli: Command = field(default_factory=Command)
    presets: Callable[[dict[str, Any]], dict[str, preset_tables.Preset]] | None = None

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The job's settings from what a caller sent: a preset applied first, then the spec resolved."""
        given = dict(given)
        if self.presets is not None:
            name = given.pop("preset", None)
            device = preset_device(given.get("device")) if name and name != preset_tables.CUSTOM else "cpu"
            given = preset_tables.apply(self.presets(given), name, given, device)
            given["preset"] = name
        return self.spec.resolve(given)

    def __call__(self, params: Mapping[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
        return self.fn(self.resolve(params), arrays, ctx)


def preset_device(name: Any) -> str:
    """The type of the device a job's ``device`` setting resolves to ('auto': what is here), for its preset's values
    there (settings.presets.ON_DEVICE); a device name that does not resolve leaves the error to the job."""
    from ..device import resolve_device  # torch: only where a preset is applied

    try:
        return resolve_device(None if name is None else str(name)).type
    except JobError:
        return "cpu"


REGISTRY: Registry[Job] = Registry("job")


def job(
    spec: Spec, cli: Command | None = None, presets: Callable[[dict[str, Any]], dict[str, Any]] | None = None, name: str = ""
) -> Callable[[JobFn], JobFn]:
    """Register the decorated function as the job ``name`` (default: ``spec.name``) with its settings ``spec``.

    Every job also takes ``device`` (the Blender side sends it to each). ``presets(given)`` picks the preset
    table for the param ``preset`` (which the spec must declare). The function is returned unchanged: called
    directly it takes resolved settings.
    """

    def register(fn: JobFn) -> JobFn:
        full = replace(spec, params=params(DEVICE, spec.params)) if "device" not in {p.name for p in spec.all_params()} else spec
        REGISTRY.add(name or spec.name, Job(name or spec.name, full, fn, cli or Command(), presets))
        return fn

    return register


class Runners(Mapping[str, Callable[[dict[str, Any], Arrays, JobContext], Result]]):
    """The registered jobs as ``name -> runner(params, arrays, ctx)`` (a live view: later registrations count)."""

    def __getitem__(self, name: str) -> Job:
        if name not in REGISTRY:
            raise KeyError(name)
        return REGISTRY.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY.names())


JOBS = Runners()


def preset_param(help: str, *tables: Mapping[str, Any]) -> Param:
    """The ``preset`` param of a job whose presets are in ``tables`` (their names, or custom)."""
    names = tuple(dict.fromkeys(n for t in tables for n in t)) + (preset_tables.CUSTOM,)
    return Param("preset", None, help, choices=names)
