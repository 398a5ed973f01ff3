"""Where a remote worker may touch files: it writes only inside its working folder and reads datasets only under the
folders it was started with. A local worker and the CLI have no sandbox (``JobContext.sandbox`` is None): they act
for the user who started them.

Paths a client sends are resolved against the sandbox (relative paths inside the working folder) and refused when
they leave it, with a message that does not say whether the path exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .context import JobError


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # another drive (Windows)
        return False


def _resolve(root: str, path: str) -> str | None:
    """The real path of ``path`` (relative: to ``root``), symbolic links followed; None for what is not a path a
    client may name (not a string, a NUL byte, ``~``)."""
    if not isinstance(path, str) or path.startswith("~"):
        return None
    try:
        return os.path.realpath(os.path.join(root, path))
    except (ValueError, OSError):
        return None


@dataclass(frozen=True)
class Sandbox:
    """``workdir``: the folder the worker writes in (and reads its own outputs from); ``read_roots``: folders whose
    files (datasets) jobs may read."""

    workdir: str
    read_roots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "workdir", os.path.realpath(self.workdir))
        object.__setattr__(self, "read_roots", tuple(os.path.realpath(r) for r in self.read_roots))

    def output(self, path: str) -> str:
        """The real path to write for a client's ``path`` (relative: inside the working folder), or JobError."""
        real = _resolve(self.workdir, path)
        if real is None or not _inside(real, self.workdir):
            raise JobError("this worker writes only inside its working folder: give a path relative to it")
        return real

    def input(self, path: str) -> str:
        """The real path to read for a client's ``path``: inside the working folder or a data folder, or JobError."""
        real = _resolve(self.workdir, path)
        if real is None or not any(_inside(real, root) for root in (self.workdir, *self.read_roots)):
            raise JobError("this worker reads only inside its working folder and its data folders")
        return real
