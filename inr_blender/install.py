"""The managed backend: which torch build suits this machine, and installing it into a virtual environment.

Standard library only, so that Blender's own Python imports it (``operators/backend.py``) as readily as the
tests do. Three steps, kept apart so that each can be called on its own:

- :func:`detect` looks at the machine (the OS, the CPU, ``nvidia-smi``) and returns a :class:`Target`;
- :func:`plan_install` turns a target and the preference's override into a :class:`Plan`: the pip commands
  and a one-line explanation. It reads nothing from the machine, so the tests pass any target;
- :func:`setup_environment` carries out a plan: it builds the environment in a temporary folder beside the
  final one and renames it into place only when everything installed (a failure or a cancel removes it).
"""

from __future__ import annotations

import functools
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

REQUIREMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements.txt")
TORCH_INDEX = "https://download.pytorch.org/whl"

# PyTorch's CUDA builds, newest first: (the CUDA version the driver must support, the index's name). A driver
# runs every build up to the CUDA version that nvidia-smi reports, so the newest one at or below it is chosen.
CUDA_BUILDS: tuple[tuple[tuple[int, int], str], ...] = (((13, 0), "cu130"), ((12, 8), "cu128"), ((12, 6), "cu126"))

# The preference's choices: "AUTO", "CPU", or one of the CUDA builds by its index name in capitals ("CU126").
OVERRIDES = ("AUTO", "CPU", *(name.upper() for _v, name in CUDA_BUILDS))


class SetupError(RuntimeError):
    """A set-up that cannot go ahead or did not finish; the message is one line for the user."""


@dataclass(frozen=True)
class Gpu:
    """An NVIDIA GPU as ``nvidia-smi`` reports it."""

    name: str
    driver: str  # "560.35.03"
    cuda: tuple[int, int] | None  # the newest CUDA version the driver supports, (12, 6)
    memory_mib: int = 0


@dataclass(frozen=True)
class Target:
    """What the choice depends on: ``platform.system()``-style OS, the CPU architecture, the NVIDIA GPU if any."""

    system: str  # "Windows" | "Linux" | "Darwin"
    machine: str  # "x86_64" | "AMD64" | "arm64" | "aarch64"
    gpu: Gpu | None = None

    @property
    def apple_silicon(self) -> bool:
        return self.system == "Darwin" and self.machine.lower() in ("arm64", "aarch64")


@dataclass(frozen=True)
class Plan:
    """What will be installed and why."""

    build: str  # "cpu", "cu126", ..., or "default" (PyPI's build: MPS on Apple silicon, CPU on Windows)
    index_url: str | None  # torch's package index (None: pip's own, PyPI unless pip is configured otherwise)
    explanation: str  # one line, said before the download
    torch_requirement: str = "torch"
    requirements: tuple[str, ...] = field(default_factory=tuple)  # the others, without torch

    def pip_commands(self, python: str) -> list[list[str]]:
        """The pip commands, in order, for the environment whose interpreter is ``python``."""
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        torch = [*pip, self.torch_requirement]
        if self.index_url:
            torch += ["--index-url", self.index_url]
        commands = [[*pip, "--upgrade", "pip"], torch]
        if self.requirements:
            commands.append([*pip, *self.requirements])
        return commands


# -- detection ------------------------------------------------------------------------------------------------


def parse_nvidia_smi(text: str) -> tuple[str, tuple[int, int] | None]:
    """The driver version and the CUDA version it supports, from ``nvidia-smi``'s header; ("", None) if absent."""
    driver = re.search(r"Driver Version:\s*([0-9][0-9.]*)", text)
    cuda = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", text)
    return (driver.group(1) if driver else ""), ((int(cuda.group(1)), int(cuda.group(2))) if cuda else None)


def detect_nvidia(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Gpu | None:
    """The first NVIDIA GPU, when ``nvidia-smi`` is on the PATH and answers; None otherwise."""
    exe = shutil.which("nvidia-smi")
    if exe is None and sys.platform == "win32":
        candidate = os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32", "nvidia-smi.exe")
        exe = candidate if os.path.exists(candidate) else None
    if exe is None:
        return None
    try:
        header = run([exe], capture_output=True, text=True, timeout=15)
        query = run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    if header.returncode != 0:
        return None
    driver, cuda = parse_nvidia_smi(header.stdout)
    if not driver:
        return None
    name, memory = "NVIDIA GPU", 0
    first = query.stdout.strip().splitlines()[0] if query.returncode == 0 and query.stdout.strip() else ""
    if "," in first:
        name, _, mib = first.rpartition(",")
        name = name.strip()
        memory = int(mib.strip()) if mib.strip().isdigit() else 0
    return Gpu(name=name, driver=driver, cuda=cuda, memory_mib=memory)


def detect() -> Target:
    """This machine, as :func:`plan_install` needs it."""
    import platform

    system, machine = platform.system(), platform.machine()
    return Target(system=system, machine=machine, gpu=detect_nvidia() if system in ("Windows", "Linux") else None)


# -- the choice -----------------------------------------------------------------------------------------------


def read_requirements(path: str = REQUIREMENTS) -> tuple[str, tuple[str, ...]]:
    """The torch requirement and the others, from a requirements file (comments and blank lines dropped)."""
    torch, others = "torch", []
    with open(path) as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if re.match(r"torch\b(?![-_.\w])", line):
                torch = line
            else:
                others.append(line)
    return torch, tuple(others)


def _cuda_label(name: str) -> str:
    version = dict((n, v) for v, n in CUDA_BUILDS)[name]
    return f"CUDA {version[0]}.{version[1]}"


def plan_install(
    target: Target,
    override: str = "AUTO",
    requirements: tuple[str, tuple[str, ...]] | None = None,
    torch_version: str = "",
) -> Plan:
    """The torch build for ``target`` (or the one ``override`` names), and the commands that install it.

    ``requirements``: (the torch requirement, the others), read from the backend's requirements.txt when None.
    ``torch_version``: pin torch to this release (``"2.13.0"``) instead of the newest one the requirement allows.
    Raises :class:`SetupError` where no build exists (Intel Macs, a CUDA build asked for on macOS).
    """
    override = (override or "AUTO").upper()
    if override not in OVERRIDES:
        raise SetupError(f"unknown torch build {override!r}; choose one of {', '.join(OVERRIDES)}")
    torch_req, others = requirements if requirements is not None else read_requirements()
    if torch_version:
        torch_req = f"torch=={torch_version}"

    def plan(build: str, index: str | None, why: str) -> Plan:
        return Plan(build=build, index_url=index, explanation=why, torch_requirement=torch_req, requirements=others)

    def cpu(why: str) -> Plan:
        if target.system == "Linux":  # PyPI's Linux wheel carries CUDA (gigabytes); the CPU index's does not
            return plan("cpu", f"{TORCH_INDEX}/cpu", f"{why}: installing the CPU build of torch from download.pytorch.org")
        return plan("cpu", None, f"{why}: installing the CPU build of torch from PyPI")

    if target.system == "Darwin":
        if not target.apple_silicon:
            raise SetupError(
                "PyTorch publishes no builds for Intel Macs since torch 2.2 (this backend needs 2.6): "
                "choose an Existing Python with torch, or a Remote Worker"
            )
        if override.startswith("CU"):
            raise SetupError("CUDA builds of torch exist for Windows and Linux only; on a Mac choose Auto or CPU")
        why = "CPU chosen in the preferences" if override == "CPU" else "Apple silicon found"
        return plan("default", None, f"{why}: installing torch from PyPI (its macOS build has the CPU and Metal (MPS) backends)")
    if target.system not in ("Windows", "Linux"):
        return cpu(f"{target.system} is neither Windows, Linux nor macOS")
    if override == "CPU":
        return cpu("CPU chosen in the preferences")
    if override.startswith("CU"):
        name = override.lower()
        return plan(
            name, f"{TORCH_INDEX}/{name}", f"{_cuda_label(name)} chosen in the preferences: installing torch with it from download.pytorch.org"
        )
    gpu = target.gpu
    if gpu is None:
        return cpu("no NVIDIA GPU found (nvidia-smi absent or not answering)")
    driver = gpu.driver.split(".", 1)[0]
    if gpu.cuda is None:
        return cpu(f"NVIDIA driver {driver} does not say which CUDA version it supports")
    supported = f"{gpu.cuda[0]}.{gpu.cuda[1]}"
    for version, name in CUDA_BUILDS:
        if gpu.cuda >= version:
            return plan(
                name,
                f"{TORCH_INDEX}/{name}",
                f"NVIDIA driver {driver} (CUDA {supported}) found: installing torch with {_cuda_label(name)} from download.pytorch.org",
            )
    oldest = _cuda_label(CUDA_BUILDS[-1][1])
    return cpu(f"NVIDIA driver {driver} supports CUDA {supported} only, torch's GPU builds need {oldest} (update the driver)")


# -- carrying it out ------------------------------------------------------------------------------------------


def venv_python(venv: str, windows: bool = sys.platform == "win32") -> str:
    """The interpreter of the virtual environment ``venv``."""
    return os.path.join(venv, "Scripts", "python.exe") if windows else os.path.join(venv, "bin", "python")


def check_index(url: str, timeout: float = 15.0) -> None:
    """Raise :class:`SetupError` when the package index at ``url`` cannot be reached (before pip retries it)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/", timeout=timeout) as response:
            response.read(1)
    except urllib.error.HTTPError:
        return  # the server answered
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SetupError(f"cannot reach {url} ({reason}): check the network connection or proxy") from None


# What pip says when it cannot reach an index, and what it says for each package.
_NETWORK = re.compile(r"(NewConnectionError|Failed to establish a new connection|Name or service not known|ConnectTimeout|ReadTimeout|"
                      r"getaddrinfo failed|Temporary failure in name resolution|Network is unreachable|SSLError|ProxyError)")  # fmt: skip
_STEP = re.compile(r"^\s*(Collecting|Processing|Downloading|Installing collected packages|Successfully installed|Requirement already satisfied)\b")


@dataclass
class Progress:
    """Where the set-up is: a fraction of the whole, and a short line for the user."""

    fraction: float = 0.0
    message: str = ""


def _remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):  # a file Windows still holds open: try once more after a moment
        time.sleep(0.5)
        shutil.rmtree(path, ignore_errors=True)


def setup_environment(
    venv: str,
    plan: Plan,
    *,
    online_access: bool,
    base_python: str = sys.executable,
    on_progress: Callable[[Progress], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    log_path: str = "",
) -> str:
    """Create the environment ``venv`` as ``plan`` says; return its interpreter.

    ``online_access``: Blender's permission to go online (``bpy.app.online_access``); set-up refuses without it.
    The environment is built in ``<venv>.partial`` and renamed to ``venv`` only when every package installed and
    torch imports; an environment already at ``venv`` is replaced only then. On a failure or a cancel (``cancelled()``
    turning true) the partial folder is removed and :class:`SetupError` raised, leaving ``venv`` as it was.
    """
    if not online_access:
        raise SetupError("online access is disabled (Preferences > System > Network): the backend's packages cannot be downloaded")
    if plan.index_url and plan.index_url.startswith(("http://", "https://")):
        check_index(plan.index_url)
    venv = os.path.abspath(venv)
    parent = os.path.dirname(venv)
    os.makedirs(parent, exist_ok=True)
    partial = venv + ".partial"
    _remove(partial)  # left by a Blender that was killed during a set-up
    python = venv_python(partial)
    commands = [[base_python, "-m", "venv", partial], *plan.pip_commands(python)]
    weights = [0.05, 0.05, 0.6, 0.3][: len(commands)]  # creating the venv, pip, torch, the rest
    progress = Progress(0.0, plan.explanation)
    log_path = log_path or os.path.join(parent, "setup.log")

    def report(fraction: float, message: str) -> None:
        progress.fraction, progress.message = min(max(fraction, 0.0), 1.0), message[:100]
        if on_progress is not None:
            on_progress(progress)

    try:
        with open(log_path, "w", encoding="utf-8", errors="replace") as log:
            log.write(plan.explanation + "\n")
            done = 0.0
            for cmd, weight in zip(commands, weights):
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                _run(cmd, log, functools.partial(_scaled, report, done, weight), cancelled, log_path)
                done += weight
            report(done, "checking the installed torch")
            check = subprocess.run(
                [python, "-c", "import torch, numpy, scipy, skimage; print(torch.__version__)"],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=300,
            )
            log.write(check.stdout + check.stderr)
            if check.returncode != 0:
                raise SetupError(f"the installed packages do not import; see {log_path}")
        _swap_into_place(partial, venv)
    except BaseException:
        _remove(partial)
        raise
    report(1.0, f"installed torch {check.stdout.strip()}")
    return venv_python(venv)


def _scaled(report: Callable[[float, str], None], start: float, weight: float, fraction: float, message: str) -> None:
    report(start + weight * fraction, message)


def _run(cmd: Sequence[str], log: IO[str], report: Callable[[float, str], None], cancelled: Callable[[], bool], log_path: str) -> None:
    """Run one command, logging its output and reporting each package step; stop it within a moment of a cancel."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)  # Blender's own modules must not leak into the environment's pip
    env.pop("PYTHONHOME", None)
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    steps, network = 0, ""
    try:
        while True:
            if cancelled():
                raise SetupError("set-up cancelled: nothing was changed")
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            log.write(line)
            if _NETWORK.search(line) and not network:
                network = line.strip()
            if _STEP.match(line):
                steps += 1
                # pip does not say how many steps are ahead: approach the end without reaching it
                report(1.0 - 0.8**steps, line.strip())
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        what = " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd[:5]))
        if network:
            raise SetupError(f"network failure while running '{what} ...' ({network[:120]}); see {log_path}")
        raise SetupError(f"'{what} ...' failed (exit {code}); see {log_path}")


def _swap_into_place(partial: str, venv: str) -> None:
    """Rename ``partial`` to ``venv``, replacing an environment already there only once the new one is in place."""
    old = ""
    if os.path.exists(venv):
        old = venv + ".old"
        _remove(old)
        try:
            os.rename(venv, old)
        except OSError as exc:
            raise SetupError(f"cannot replace {venv} ({exc.strerror}): stop the backend worker and try again") from None
    try:
        os.rename(partial, venv)
    except OSError as exc:
        if old:
            os.rename(old, venv)
        raise SetupError(f"cannot move the new environment into place ({exc.strerror})") from None
    if old:
        _remove(old)
