"""Job ``transfer_detail``: the detail of a displacement field on the base of another SDF (fitting/transfer.py)."""

from __future__ import annotations

import argparse
from typing import Any

from ..checkpoint import read_checkpoint
from ..context import JobContext
from ..fitting import transfer
from ..settings import transfer as settings
from ..settings.spec import Param, Spec, params
from .registry import Arrays, Command, Positional, Result, job
from .shared import OUTPUT, RETURN_CHECKPOINT, checkpoint_target, deliver, source as checkpoint_source, summary

ROLES = (
    Param("source_checkpoint", "", "The displacement field whose detail is taken (path; or the array of that name)"),
    Param("target_checkpoint", "", "The SDF whose base receives it (path; or the array of that name)"),
)


def _write(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    print(f"wrote the transferred field ({result['mode']}, strength {result['strength']:g}, nu {result['nu']:g}): {result['checkpoint_path']}")


CLI = Command(
    names=("transfer",),
    output="checkpoint of the transferred field to write (.pt)",
    output_param="checkpoint_path",
    positionals=(
        Positional("source", "displacement-field checkpoint (fit-sdf --method idf) whose detail is taken", "source_checkpoint"),
        Positional("target", "SDF checkpoint whose base receives it (a displacement field gives its base)", "target_checkpoint"),
    ),
    write=_write,
)


@job(Spec("transfer_detail", params(OUTPUT, RETURN_CHECKPOINT, ROLES, settings.PARAMS), help=settings.SPEC.help), cli=CLI)
def transfer_detail(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """A new field checkpoint: ``target_checkpoint``'s base displaced by ``source_checkpoint``'s detail, written to
    ``checkpoint_path`` (or sent back), with the transfer's settings (settings/transfer.py)."""
    path, send_back = checkpoint_target(p, "transfer_detail", ctx)
    source, target = (read_checkpoint(checkpoint_source(p, arrays, ctx, role.name, role.name), frame=True) for role in ROLES)
    ckpt = transfer.transfer_detail(source, target, {q.name: p[q.name] for q in settings.PARAMS})
    path, out = deliver(ckpt, path, send_back)
    return {**summary(ckpt), **ckpt["params"], "checkpoint_path": path}, out
