"""Where the project writes files: checked before the work, written atomically.

:func:`atomic_write` is the one way a file is written (meshes, point clouds, skeletons, images, arrays,
checkpoints, the Blender side's transforms.json and .blend sidecars): to a temporary file in the same folder,
flushed to disk, then renamed over the target, so that the target holds either its old content or the whole new
one, never a part. The temporary file is removed on any failure (an exception, Ctrl-C, SIGTERM in the CLI); one
that a killed process left behind (SIGKILL, power loss) is removed by the next write of the same file.

:func:`check_output` refuses, before a job computes anything, an output path that could not be written afterwards:
an unknown extension, an existing folder, a folder that is missing and cannot be made, a read-only folder.

Standard library only: the Blender side imports it too.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

from .context import JobError

TEMP_SUFFIX = ".inr-tmp"
_STEM_CHARS = 100  # of the target's name in a temporary file's name (names are at most 255 bytes)
_STALE_SECONDS = 24 * 3600  # where a writer's process cannot be asked about (Windows), leftovers this old are removed


def _temp_prefix(path: str) -> str:
    return f".{os.path.basename(path)[:_STEM_CHARS]}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # POSIX only: on Windows os.kill would terminate the process
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or cannot tell
    return True


def remove_leftovers(path: str) -> int:
    """Remove the temporary files of interrupted writes of ``path`` whose writer is gone; return how many."""
    folder, prefix = os.path.dirname(path), _temp_prefix(path)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(TEMP_SUFFIX)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        full = os.path.join(folder, name)
        pid = name[len(prefix) :].split("-", 1)[0]
        try:
            if sys.platform == "win32" or not pid.isdigit():
                gone = time.time() - os.stat(full).st_mtime > _STALE_SECONDS
            else:
                gone = int(pid) != os.getpid() and not _alive(int(pid))
            if gone:
                os.remove(full)
                removed += 1
        except OSError:
            pass  # removed meanwhile, or not ours to remove
    return removed


def _fsync_folder(folder: str) -> None:
    """Make the rename durable (POSIX; a no-op where folders cannot be opened)."""
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """A file object to write ``path`` through: a temporary file in its folder (created if missing), renamed over
    ``path`` when the block ends without an exception, removed otherwise. An existing file keeps its permissions;
    a new one gets the umask's. A symbolic link at ``path`` is written through, as ``open`` would."""
    path = os.path.realpath(os.path.expanduser(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}-", suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        try:
            permissions = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            permissions = 0o666 & ~umask  # mkstemp makes files private; an output is an ordinary file
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def _nearest_folder(path: str, what: str) -> str:
    """The deepest existing ancestor of ``path``; JobError if one of its ancestors is a file."""
    folder = os.path.dirname(path)
    while not os.path.isdir(folder):
        if os.path.lexists(folder):
            raise JobError(f"cannot write {what} to {path}: {folder} is not a folder")
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def check_output(path: str, formats: tuple[str, ...] = (), what: str = "the output", default_format: str = "") -> str:
    """``path`` as an absolute path, refused (JobError, one line) when it could not be written: an extension not in
    ``formats`` (when given; ``default_format`` stands for none), an existing folder, a parent that is a file, a
    folder that does not allow writing. Missing folders are fine: writing makes them."""
    if not path:
        raise JobError(f"no path for {what}")
    if formats:
        ext = os.path.splitext(path)[1].lower() or default_format
        if ext not in formats:
            raise JobError(f"cannot write {what} to {path}: unknown format {ext or '(no extension)'}; use {', '.join(formats)}")
    full = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(full):
        raise JobError(f"cannot write {what} to {path}: it is a folder")
    if os.path.lexists(full) and not os.path.isfile(full) and not os.path.islink(full):
        raise JobError(f"cannot write {what} to {path}: something that is not a file is there")
    folder = _nearest_folder(full, what)
    if not os.access(folder, os.W_OK | os.X_OK) or _read_only_mount(folder):
        raise JobError(f"cannot write {what} to {path}: {folder} is not writable")
    return full


def _read_only_mount(folder: str) -> bool:
    """Whether ``folder`` is on a file system mounted read-only (``os.access`` says writable to root there)."""
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:
        return False
    try:
        return bool(statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
