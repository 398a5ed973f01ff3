"""The managed backend's choice of torch build, for each OS, GPU and override (inr_blender/install.py).

The planning function reads nothing from the machine: each case passes the platform and GPU it describes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from inr_blender import install
from inr_blender.install import Gpu, SetupError, Target, plan_install

REQS = ("torch>=2.6", ("numpy>=1.23", "scipy>=1.9", "scikit-image>=0.20"))
WHL = "https://download.pytorch.org/whl"

WINDOWS, LINUX = Target("Windows", "AMD64"), Target("Linux", "x86_64")
MAC_ARM, MAC_INTEL = Target("Darwin", "arm64"), Target("Darwin", "x86_64")


def nvidia(cuda: tuple[int, int] | None, driver: str = "560.35.03") -> Gpu:
    return Gpu(name="NVIDIA GeForce RTX 4070", driver=driver, cuda=cuda, memory_mib=12282)


def with_gpu(target: Target, gpu: Gpu | None) -> Target:
    return Target(target.system, target.machine, gpu)


def plan(target: Target, override: str = "AUTO", **kw) -> install.Plan:
    return plan_install(target, override, requirements=REQS, **kw)


@pytest.mark.parametrize(
    ("target", "build", "index", "source"),
    [
        (WINDOWS, "cpu", None, "PyPI"),  # PyPI's Windows wheel is the CPU build
        (LINUX, "cpu", f"{WHL}/cpu", "download.pytorch.org"),  # PyPI's Linux wheel would bring CUDA's gigabytes
        (MAC_ARM, "default", None, "PyPI"),  # the macOS wheel has MPS
        (Target("Linux", "aarch64"), "cpu", f"{WHL}/cpu", "download.pytorch.org"),
    ],
)
def test_without_an_nvidia_gpu(target, build, index, source):
    p = plan(target)
    assert (p.build, p.index_url) == (build, index)
    assert source in p.explanation and "\n" not in p.explanation


@pytest.mark.parametrize("os_target", [WINDOWS, LINUX], ids=["windows", "linux"])
@pytest.mark.parametrize(
    ("cuda", "build"),
    [((12, 6), "cu126"), ((12, 7), "cu126"), ((12, 8), "cu128"), ((12, 9), "cu128"), ((13, 0), "cu130"), ((13, 2), "cu130")],
)
def test_nvidia_gets_the_newest_cuda_build_its_driver_supports(os_target, cuda, build):
    p = plan(with_gpu(os_target, nvidia(cuda)))
    assert (p.build, p.index_url) == (build, f"{WHL}/{build}")
    assert p.explanation == (
        f"NVIDIA driver 560 (CUDA {cuda[0]}.{cuda[1]}) found: installing torch with CUDA {build[2:-1]}.{build[-1]} from download.pytorch.org"
    )


@pytest.mark.parametrize("os_target", [WINDOWS, LINUX], ids=["windows", "linux"])
def test_too_old_a_driver_gets_the_cpu_build_and_says_why(os_target):
    p = plan(with_gpu(os_target, nvidia((11, 4), driver="470.256.02")))
    assert p.build == "cpu"
    assert p.index_url == (f"{WHL}/cpu" if os_target is LINUX else None)
    assert "NVIDIA driver 470 supports CUDA 11.4 only" in p.explanation and "update the driver" in p.explanation
    unknown = plan(with_gpu(os_target, nvidia(None)))
    assert unknown.build == "cpu" and "does not say which CUDA version" in unknown.explanation


@pytest.mark.parametrize("os_target", [WINDOWS, LINUX], ids=["windows", "linux"])
@pytest.mark.parametrize("gpu", [None, nvidia((12, 8))], ids=["no-gpu", "nvidia"])
def test_overrides_on_windows_and_linux(os_target, gpu):
    target = with_gpu(os_target, gpu)
    cpu = plan(target, "CPU")
    assert cpu.build == "cpu" and cpu.explanation.startswith("CPU chosen in the preferences")
    assert cpu.index_url == (f"{WHL}/cpu" if os_target is LINUX else None)
    for name in ("cu126", "cu128", "cu130"):  # the user may know better than nvidia-smi (not on the PATH, say)
        p = plan(target, name.upper())
        assert (p.build, p.index_url) == (name, f"{WHL}/{name}")
        assert "chosen in the preferences" in p.explanation


def test_macs():
    assert plan(MAC_ARM, "CPU").index_url is None
    with pytest.raises(SetupError, match="CUDA builds of torch exist for Windows and Linux only"):
        plan(MAC_ARM, "CU128")
    with pytest.raises(SetupError, match="no builds for Intel Macs"):
        plan(MAC_INTEL)
    with pytest.raises(SetupError, match="unknown torch build"):
        plan(LINUX, "ROCM")


def test_commands_install_torch_from_its_index_then_the_rest_without_torch():
    p = plan(with_gpu(WINDOWS, nvidia((12, 6))))
    py = r"C:\env\Scripts\python.exe"
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    assert p.pip_commands(py) == [
        [*pip, "--upgrade", "pip"],
        [*pip, "torch>=2.6", "--index-url", f"{WHL}/cu126"],
        [*pip, "numpy>=1.23", "scipy>=1.9", "scikit-image>=0.20"],
    ]
    mac = plan(MAC_ARM, torch_version="2.13.0").pip_commands("/env/bin/python")
    assert mac[1] == [*pip[:0], "/env/bin/python", *pip[1:], "torch==2.13.0"]  # PyPI: no --index-url


def test_the_backend_requirements_file_is_read_with_torch_apart():
    torch, others = install.read_requirements()
    assert torch.startswith("torch>=")
    assert others and not any(r.startswith("torch") for r in others)
    assert {r.split(">")[0].split("=")[0] for r in others} >= {"numpy", "scipy", "scikit-image"}


def test_nvidia_smi_header_is_parsed():
    header = (
        "+-----------------------------------------------------------------------------------------+\n"
        "| NVIDIA-SMI 560.35.03              Driver Version: 560.35.03      CUDA Version: 12.6     |\n"
    )
    assert install.parse_nvidia_smi(header) == ("560.35.03", (12, 6))
    assert install.parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the driver") == ("", None)


def test_detect_nvidia_from_what_nvidia_smi_answers(monkeypatch, tmp_path):
    """detect_nvidia takes the command runner as an argument: a stand-in nvidia-smi answers here."""
    exe = tmp_path / "nvidia-smi"
    exe.write_text("")
    monkeypatch.setenv("PATH", str(tmp_path))
    exe.chmod(0o755)

    def answer(cmd, **kw):
        out = "NVIDIA H100 80GB HBM3, 81559\n" if len(cmd) > 1 else "Driver Version: 570.124.06   CUDA Version: 12.8"
        return subprocess.CompletedProcess(cmd, 0, out, "")

    if sys.platform == "win32":
        pytest.skip("PATH lookup of a script differs on Windows")
    assert install.detect_nvidia(run=answer) == Gpu("NVIDIA H100 80GB HBM3", "570.124.06", (12, 8), 81559)
    assert install.detect_nvidia(run=lambda cmd, **kw: subprocess.CompletedProcess(cmd, 9, "", "no devices")) is None
    assert plan(with_gpu(LINUX, install.detect_nvidia(run=answer))).build == "cu128"


def test_set_up_refuses_without_online_access_and_leaves_nothing(tmp_path):
    with pytest.raises(SetupError, match="online access is disabled"):
        install.setup_environment(str(tmp_path / "backend-venv"), plan(LINUX), online_access=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # creates a virtual environment and runs pip: about 7 s
def test_a_failed_set_up_leaves_no_half_made_environment_and_keeps_the_old_one(tmp_path):
    """A pip step that fails (a requirement no index has) removes the partial environment; one already there stays."""
    venv = tmp_path / "backend-venv"
    venv.mkdir()
    (venv / "old").write_text("kept")
    bad = install.Plan("cpu", None, "test", torch_requirement="inr-blender-no-such-package==0", requirements=())
    bad = install.Plan(**{**bad.__dict__, "index_url": (tmp_path / "empty-index").as_uri()})
    (tmp_path / "empty-index").mkdir()
    seen = []
    with pytest.raises(SetupError, match="failed"):
        install.setup_environment(str(venv), bad, online_access=True, on_progress=lambda p: seen.append(p.message))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backend-venv", "empty-index", "setup.log"]
    assert (venv / "old").read_text() == "kept"
