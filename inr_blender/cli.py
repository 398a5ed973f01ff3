"""The command line, generated from the job registry: ``python -m inr_blender <job> [positionals] [--param value]``.

Every registered job is a command (its name with dashes or underscores, and the other names its
:class:`~.jobs.registry.Command` gives, e.g. ``extract`` for ``extract_mesh``). Each of its params is an option
(``--batch-size``) whose help shows the param's help, default, bounds and choices; what a param cannot say (input
files, output files, the summary printed at the end) is the job's ``Command``. A job without one reads its arrays
from ``--arrays in.npz``, writes the result arrays to ``-o out.npz`` and prints the result as JSON. ``serve`` runs
the worker. Bad input prints ``error: ...`` (one line) to stderr and exits with 2, before any computation where the
input allows (outputs and their extensions are checked first); a traceback means a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, NoReturn

from .context import JobContext, JobError
from .jobs.registry import REGISTRY, Job
from .outputs import atomic_write, check_output
from .preview_files import file_sink
from .progress_bar import ProgressBar
from .sandbox import Sandbox
from .settings.spec import Param, Spec, number

DEFAULT_WORKDIR = "~/.inr_blender/work"  # a remote worker's working folder unless --workdir names one


def _serve(args: argparse.Namespace) -> None:
    from .context import JobError
    from .wire.worker import serve

    token = args.token
    if not token and args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise JobError(f"cannot read the token file {args.token_file}: {reason}") from None
    token = token or os.environ.get("INR_TOKEN", "")
    sandbox = None
    if not args.local:  # a worker for clients elsewhere: files only inside its working folder
        workdir = os.path.abspath(os.path.expanduser(args.workdir or DEFAULT_WORKDIR))
        os.makedirs(workdir, exist_ok=True)
        sandbox = Sandbox(workdir, tuple(args.data_root))
        print(f"working folder {workdir}" + "".join(f"; data folder {r}" for r in sandbox.read_roots), flush=True)
    serve(
        host=args.host,
        port=args.port,
        token=token,
        once=args.once,
        port_file=args.port_file,
        sandbox=sandbox,
        auth_timeout=args.auth_timeout,
        idle_timeout=args.idle_timeout,
    )


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve jobs over TCP (the worker)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    p.add_argument("--token-file", default=None, help="read the shared token (16 characters or more) from this file")
    p.add_argument("--token", default=None, help="the shared token; other users see it in ps: prefer --token-file or the INR_TOKEN variable")
    p.add_argument("--port-file", default=None, help="write the bound port to this file once listening")
    p.add_argument("--once", action="store_true", help="exit when the first client disconnects")
    p.add_argument(
        "--workdir",
        default=None,
        help=f"the folder jobs write in, and read their outputs from (default {DEFAULT_WORKDIR}); paths outside are refused",
    )
    p.add_argument("--data-root", action="append", default=[], help="a folder whose datasets jobs may also read (repeatable)")
    p.add_argument(
        "--local",
        action="store_true",
        help="the worker Blender starts for its own user on this machine: no working folder, jobs read and write where the client says",
    )
    p.add_argument("--auth-timeout", type=float, default=None, help="seconds a new connection has to authenticate (default 5; INR_AUTH_TIMEOUT)")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="seconds before a connected client that runs no job is dropped (default 600, 0: never; INR_IDLE_TIMEOUT)",
    )
    p.set_defaults(func=_serve)


def _text(value: Any) -> str:
    return (
        "none"
        if value is None
        else (" ".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else str(value))
    )


def param_help(param: Param, spec: Spec, defaults: dict[str, dict[str, Any]] | None = None) -> str:
    """A param's help line: its help, then its default (per variant where they differ), bounds and choices.
    ``defaults``: ``{variant: {param: value}}`` as the command runs them (:func:`command_defaults`); without it, the
    declared ones."""
    notes = []
    defaults = spec_defaults(spec) if defaults is None else defaults
    by_variant = {k: d[param.name] for k, d in defaults.items() if param.name in d}
    values = {repr(v) for v in by_variant.values()}
    if len(values) == 1 and len(by_variant) == len(defaults):  # one default whatever the variant
        default = next(iter(by_variant.values()))
        if default is not None and default != "":
            notes.append(f"default {_text(default)}")
    elif by_variant:
        notes.append("default " + ", ".join(f"{k} {_text(v)}" for k, v in by_variant.items()))
    elif param.default is not None and param.default != "":
        notes.append(f"default {_text(param.default)}")
    if param.positive:
        notes.append("positive")
    if param.minimum is not None:
        notes.append(f"at least {number(param.minimum)}")
    if param.maximum is not None:
        notes.append(f"at most {number(param.maximum)}")
    if param.choices:
        notes.append(f"one of {', '.join(param.choices)}")
    text = f"{param.help} ({'; '.join(notes)})" if notes else param.help
    return text.replace("%", "%%")


def spec_defaults(spec: Spec) -> dict[str, dict[str, Any]]:
    """``{variant: {param: default}}`` of a spec (``{"": {...}}`` without variants), as :meth:`Spec.resolve` fills
    them in: a variant's own value, else the common one's."""
    if spec.variants is None:
        return {"": spec.defaults()}
    return {k: {n: v for n, v in spec.defaults(k).items() if n != spec.variants.key} for k in spec.variants.sets()}


def command_defaults(job: Job) -> dict[str, dict[str, Any]]:
    """:func:`spec_defaults` as the command runs them when only the variant is named: the command's preset's values
    (see :func:`default_preset`) over the declared defaults. ``preset`` itself is left out (its option says it)."""
    out = spec_defaults(job.spec)
    for choice, values in out.items():
        values.pop("preset", None)
        given = {job.spec.variants.key: choice} if job.spec.variants is not None else {}
        name = default_preset(job, given)
        if name and job.presets is not None:
            values.update({k: v for k, v in job.presets(given)[name].values.items() if k in values})
    return out


def default_preset(job: Job, params: dict[str, Any]) -> str | None:
    """The preset the command runs with the options ``params``: the one named, else the command's (unless the
    variant named, e.g. ``--method``, is not the one that preset runs); None: none."""
    name = job.cli.preset
    if params.get("preset") is not None or not name or job.presets is None:
        return params.get("preset")
    runs = _preset_variant(job, params)
    chosen = params.get(job.spec.variants.key) if job.spec.variants is not None else None
    return None if chosen is not None and runs is not None and str(chosen).lower() != runs else name


def _preset_variant(job: Job, given: dict[str, Any]) -> str | None:
    """The variant (an SDF method) the command's preset runs, for the options ``given``; None when it runs any."""
    variants = job.spec.variants
    if variants is None or job.presets is None or not job.cli.preset:
        return None
    return job.presets(given)[job.cli.preset].values.get(variants.key)


def _option(parser: argparse.ArgumentParser, param: Param, spec: Spec, spellings: list[str], defaults: dict[str, dict[str, Any]]) -> None:
    flags = [f"--{name.replace('_', '-')}" for name in (param.name, *spellings)]
    kwargs: dict[str, Any] = {"dest": param.name, "default": None, "help": param_help(param, spec, defaults)}
    if param.type is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif param.type is list:
        kwargs.update(nargs=param.length or "+", metavar="X")
    else:
        kwargs["metavar"] = param.type.__name__.upper()
    parser.add_argument(*flags, **kwargs)


def _offered(job: Job) -> list[Param]:
    """The params of ``job`` that are options: all that the command's positionals, output or fixed values do not set
    (``preset`` with the command's default preset as its default)."""
    cli = job.cli
    taken = {p.param for p in cli.positionals} | {cli.output_param} | set(cli.fixed) | set(cli.hidden)
    return [_command_preset(job, p) if p.name == "preset" else p for p in job.spec.all_params() if p.cli and p.name not in taken]


def _command_preset(job: Job, param: Param) -> Param:
    """The ``preset`` param as the command offers it: the command's preset as its default, and when that preset
    picks the variant (an SDF method), the help says that naming another variant runs none."""
    name, runs = job.cli.preset, _preset_variant(job, {})
    if not name:
        return param
    if runs is not None and job.spec.variants is not None:
        v = job.spec.variants
        param = replace(param, help=f"{param.help}; a --{v.key} other than {runs} runs no preset unless one is named")
    return param.with_default(name)


def add_job(sub: Any, job: Job) -> argparse.ArgumentParser:
    """The subcommand of ``job``: its positionals, ``-o``, an option per param, its flags and extra options."""
    cli, spec = job.cli, job.spec
    command = job.name.replace("_", "-")
    aliases = [name for name in dict.fromkeys((job.name, *cli.names)) if name != command]
    description = spec.help
    if cli.preset and job.presets is not None:
        runs = _preset_variant(job, {})
        unless = f" or --{spec.variants.key} another {spec.variants.what or spec.variants.key}" if runs and spec.variants else ""
        description += f". It runs the {cli.preset} preset ({job.presets({})[cli.preset].help}) unless --preset names another{unless}"
    parser = sub.add_parser(command, aliases=aliases, help=spec.help, description=description.replace("%", "%%"))
    for pos in cli.positionals:
        parser.add_argument(pos.name, help=pos.help, nargs=pos.nargs, type=pos.kind)
    if cli.output:
        parser.add_argument("-o", "--output", required=True, help=cli.output)
    if cli.read is None and cli.write is None:
        parser.add_argument("--arrays", help="read the job's input arrays from this .npz")
        parser.add_argument("-o", "--output", help="write the result arrays to this .npz")
    if spec.variants is not None:
        v = spec.variants
        runs = _preset_variant(job, {})
        default = f"{runs} (the {cli.preset} preset's; {v.default} with --preset custom)" if runs else v.default
        parser.add_argument(f"--{v.key}", default=None, help=f"{v.help or v.what} (default {default}; one of {', '.join(v.sets())})")
    spellings: dict[str, list[str]] = {}
    for name, target in cli.options.items():
        if isinstance(target, str):
            spellings.setdefault(target, []).append(name)
    defaults = command_defaults(job)
    for param in _offered(job):
        _option(parser, param, spec, spellings.get(param.name, []), defaults)
    for name, target in cli.options.items():
        if not isinstance(target, str):
            values, text = target
            parser.add_argument(f"--{name}", dest=f"flag:{name}", action="store_true", help=text)
    for name, kwargs in cli.extra.items():
        if kwargs.get("default") is not None and "help" in kwargs:
            kwargs = {**kwargs, "help": f"{kwargs['help']} (default {_text(kwargs['default'])})"}
        parser.add_argument(f"--{name}", **kwargs)
    parser.add_argument("-q", "--quiet", action="store_true", help="print the result and errors only, no progress")
    parser.set_defaults(func=lambda args: run(job, args))
    return parser


@contextlib.contextmanager
def _files(action: str, path: str = "") -> Iterator[None]:
    """Turn what reading or writing the command's files (``path``, when one) raises on bad files, full disks and the
    like into one line."""
    try:
        yield
    except (JobError, KeyboardInterrupt, SystemExit):
        raise
    except OSError as exc:
        where = f" {exc.filename or path}" if exc.filename or path else ""
        raise JobError(f"cannot {action}{where}: {exc.strerror or exc}") from None
    except RecursionError:
        raise JobError(f"cannot {action} a file nested too deeply") from None
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise JobError(f"cannot {action} a file: {one_line(exc)}") from None


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (a clear message is one line; long ones are cut)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def check_outputs(job: Job, args: argparse.Namespace) -> None:
    """Refuse, before anything is computed, an output the command could not write afterwards: its extension, a
    folder, a missing folder that cannot be made, a read-only one. (A job checks its own checkpoint output.)"""
    cli, output = job.cli, getattr(args, "output", None)
    if not output or cli.output_param:
        return
    if cli.write is None:
        check_output(output, (".npz",), "the arrays")
    else:
        check_output(output, cli.output_formats, "the output", cli.output_default)


def run(job: Job, args: argparse.Namespace) -> None:
    """Run ``job`` with the command line's ``args``: params from the options, arrays from ``read``; then ``write``."""
    import numpy as np

    cli = job.cli
    check_outputs(job, args)
    params: dict[str, Any] = {p.name: getattr(args, p.name) for p in _offered(job) if getattr(args, p.name) is not None}
    if job.spec.variants is not None and getattr(args, job.spec.variants.key) is not None:
        params[job.spec.variants.key] = getattr(args, job.spec.variants.key)
    for name, target in cli.options.items():
        if not isinstance(target, str) and getattr(args, f"flag:{name}"):
            params.update(target[0])
    params.update({p.param: getattr(args, p.name) for p in cli.positionals if p.param})
    if cli.output_param:
        params[cli.output_param] = args.output
    params.update(cli.fixed)
    if job.presets is not None:
        params["preset"] = default_preset(job, params)
    arrays: dict[str, Any] = {}
    with _files("read"):
        if cli.read is not None:
            params, arrays = cli.read(args, params)
        elif getattr(args, "arrays", None):
            with np.load(args.arrays, allow_pickle=False) as data:
                arrays = dict(data)
    bar = None if args.quiet else ProgressBar()
    sink = file_sink(getattr(args, "output", None), params.get("preview_every"), print if bar is None else bar.note)  # --preview-every
    ctx = JobContext(send=bar, preview=sink)
    try:
        with _ctrl_c_keeps_the_fit(ctx, bar):
            result, out = job(params, arrays, ctx)
    finally:
        if bar is not None:
            bar.close()
    with _files("write", getattr(args, "output", None) or ""):
        if cli.write is not None:
            cli.write(args, result, out)
            return
        if getattr(args, "output", None) and out:
            with atomic_write(args.output) as fh:
                np.savez(fh, **out)
    print(json.dumps(result, default=str))


STOPPING = "stopping: the training ends at this step and the fit is written (Ctrl-C again to abort)"


@contextlib.contextmanager
def _ctrl_c_keeps_the_fit(ctx: JobContext, bar: ProgressBar | None) -> Iterator[None]:
    """While a job runs: the first Ctrl-C during a training loop (``ctx.stoppable``) ends it at the current step and
    the job writes what it has (``ctx.request_stop``); a Ctrl-C before any training, or a second one, aborts. Not
    under torchrun, whose ranks must stop at the same step."""
    if threading.current_thread() is not threading.main_thread() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        if not ctx.stoppable or ctx.stop_requested():
            raise KeyboardInterrupt
        ctx.request_stop()
        if bar is not None:
            bar.note(STOPPING, sys.stderr)
        else:
            print(STOPPING, file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, like every other error of the command line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command: ``serve`` and one per registered job."""
    parser = _Parser(prog="inr-blender", description="Neural implicit fields backend for Blender.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(sub)
    for _name, job in sorted(REGISTRY.items()):
        add_job(sub, job)
    return parser


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: a file being written is removed, the old one stays


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``inr-blender`` and ``python -m inr_blender``. Bad input (a JobError, or an OSError such as a
    full disk) prints ``error: <one line>`` to stderr and returns 2; anything else is a bug and shows its traceback."""
    args = build_parser().parse_args(argv)
    previous = None
    if args.func is not _serve and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)  # a job command: SIGTERM unwinds like Ctrl-C
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    from .context import Cancelled

    try:
        args.func(args)
    except JobError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk that filled up or went read-only while the job wrote
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: not enough memory for this job: ask for less (smaller sizes or counts)", file=sys.stderr)
        return 2
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
