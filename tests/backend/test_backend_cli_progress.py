"""The command line's progress (a bar redrawn in place on a terminal, plain lines elsewhere; ``--quiet``) and its
Ctrl-C (the first ends a training and keeps the fit, a second aborts): the progress module fed real events, the
training loop with a real stop request, the real SIGINT handler, and ``python -m inr_blender`` in a subprocess."""

import io
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import load_checkpoint
from inr_blender.cli import STOPPING, _ctrl_c_keeps_the_fit
from inr_blender.context import JobContext
from inr_blender.fileio import write_mesh
from inr_blender.fitting.loop import train
from inr_blender.geometry.primitives import icosphere
from inr_blender.progress_bar import ProgressBar, duration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


class Clock:
    """A clock the test moves (the bar's rate and ETA come from it)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(step, total, message="fitting", loss=None, psnr=None):
    out = {"step": step, "total": total, "loss": loss, "message": message}
    if psnr is not None:
        out["psnr"] = psnr
    return out


def test_plain_lines_when_not_a_terminal_say_step_rate_eta_and_loss():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, tty=False, interval=5.0, clock=clock)
    bar(event(0, 1, "estimating point spacing"))
    bar(event(1, 1, "done"))  # a one-step phase shows as it starts only
    for step in range(0, 1001, 10):  # 50 steps per second for 20 s, an event every 0.2 s
        clock.now = step / 50
        bar(event(step, 1000, "fitting IGR", None if step == 0 else 1.0 / step))
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "estimating point spacing" and "done" not in lines
    assert lines[1] == "fitting IGR: 0/1000 (0%)"
    assert len(lines) == 1 + 5  # the message, then the phase: its start, at 5, 10 and 15 s, its end at 20 s
    assert lines[3] == "fitting IGR: 500/1000 (50%), 50.0 steps/s, ETA 0:10, loss 0.002"
    assert lines[-1] == "fitting IGR: 1000/1000 (100%), 50.0 steps/s, took 0:20, loss 0.001"
    bar(event(0, 1000, "fitting IGR"))  # the same phase again from its start (a second training): a new phase
    assert out.getvalue().splitlines()[-1] == "fitting IGR: 0/1000 (0%)"


def test_on_a_terminal_one_line_per_phase_is_redrawn_in_place_within_its_width():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, tty=True, width=110, clock=clock)
    for step in range(0, 201, 25):
        clock.now = step * 0.5
        bar(event(step, 200, "fitting fast NeRF", 0.1, None if step == 0 else 20.0 + step / 100))
    bar(event(0, 3, "rendering held-out view 1 of 3"))
    bar(event(1, 3, "rendering held-out view 2 of 3"))  # the same phase: its numbers change, not its line
    bar.close()
    text = out.getvalue()
    first, second = text.split("\n")[:2]
    drawn = first.split("\r")[1:]
    assert len(drawn) == 9 and all(len(d) <= 109 for d in drawn)
    assert drawn[4].startswith("fitting fast NeRF [") and "100/200 (50%), 2.00 steps/s, ETA 0:50, PSNR 21.00 dB" in drawn[4]
    assert drawn[-1].rstrip().endswith("200/200 (100%), 2.00 steps/s, took 1:40, PSNR 22.00 dB")
    assert drawn[0].count("#") == 0 and drawn[-1].count("-") == 0  # the bar fills up
    assert second.count("\r") == 2 and second.split("\r")[-1].startswith("rendering held-out view 2 of 3 [")
    assert text.endswith("\n")  # closed: what follows starts on a line of its own
    assert duration(3725) == "1:02:05" and duration(59.6) == "1:00"
    narrow = io.StringIO()
    ProgressBar(narrow, tty=True, width=40, clock=clock)(event(5, 200, "fitting fast NeRF", 0.1))
    assert narrow.getvalue() == "\rfitting fast NeRF: 5/200 (2%), loss 0.1"  # no room for a bar; cut to the width


def test_a_stop_request_ends_the_training_after_the_step_it_came_in():
    torch.manual_seed(0)
    field, x = torch.nn.Linear(3, 1), torch.randn(64, 3)
    ctx = JobContext()

    def step_loss(i):
        if i == 4:
            ctx.request_stop()
        return field(x).pow(2).mean()

    run = train(field, step_loss, 1000, 1e-2, ctx)
    assert run.stop_reason == "interrupted after 5 steps" and len(run.losses) == 5 and ctx.stoppable
    assert run.losses[-1] < run.losses[0]  # it trained, and what it trained is kept
    untouched = train(field, lambda i: field(x).pow(2).mean(), 3, 1e-2, JobContext())  # the worker's: no stop
    assert untouched.stop_reason == "reached the iteration limit (3 steps)"


def test_ctrl_c_aborts_before_training_stops_it_during_and_aborts_the_second_time(capsys):
    previous = signal.getsignal(signal.SIGINT)
    ctx = JobContext()
    with _ctrl_c_keeps_the_fit(ctx, None):
        with pytest.raises(KeyboardInterrupt):  # nothing trains yet: nothing to keep
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        assert not ctx.stop_requested()  # what the training loop asks each step
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert ctx.stop_requested() and capsys.readouterr().err == STOPPING + "\n"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert signal.getsignal(signal.SIGINT) is previous


@pytest.mark.slow  # a subprocess that imports torch and fits: ~10 s on two busy cores
def test_ctrl_c_in_fit_sdf_writes_the_checkpoint_with_its_stop_reason(tmp_path):
    d = np.random.default_rng(0).normal(size=(1000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    write_mesh(str(tmp_path / "cloud.ply"), 0.5 * d, None, d)
    args = ["fit-sdf", "cloud.ply", "-o", "f.pt", "--method", "igr", "--width", "16", "--depth", "2", "--batch-size", "128"]
    args += ["--iterations", "1000000", "--tolerance", "0", "--device", "cpu"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "inr_blender", *args], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("fitting IGR: 0/1000000"):
                break
        assert seen and seen[-1].startswith("fitting IGR"), seen
        time.sleep(1.0)  # training steps
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert STOPPING in err and "Traceback" not in err
    steps = int(re.search(r"stopped: interrupted after (\d+) steps", rest).group(1))
    assert steps >= 1
    _field, ckpt = load_checkpoint(str(tmp_path / "f.pt"))
    assert ckpt["stop_reason"] == f"interrupted after {steps} steps" and ckpt["iterations_run"] == steps


@pytest.mark.slow  # two subprocesses that import torch: ~10 s
def test_quiet_prints_the_result_alone_and_metrics_name_their_units(tmp_path):
    v, f = icosphere(1.5, 3, (0.0, 0.0, 2.0))
    write_mesh(str(tmp_path / "a.ply"), v, f)
    v, f = icosphere(1.53, 2, (0.0, 0.0, 2.0))
    write_mesh(str(tmp_path / "b.obj"), v, f)
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "inr_blender", "metrics", "a.ply", "b.obj", "--num-samples", "4000", *extra],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    loud, quiet = run(), run("--quiet")
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "sampling surfaces" in loud.stdout and "sampling surfaces" not in quiet.stdout and quiet.stderr == ""
    lines = dict(line.split(": ", 1) for line in quiet.stdout.splitlines())
    assert list(lines) == ["reference radius r", "Chamfer-L1", "Chamfer-L2", "Hausdorff", "F-score", "normal consistency", "normal angle"]
    assert loud.stdout.endswith(quiet.stdout)
    radius = float(lines["reference radius r"].split()[0])
    assert radius == pytest.approx(1.5, rel=1e-6)
    world, normalised = map(float, re.fullmatch(r"(\S+) world units \((\S+) of the reference's radius r\)", lines["Chamfer-L1"]).groups())
    assert world == pytest.approx(normalised * radius, rel=1e-4) and 0.01 < world < 0.1  # the spheres' radii differ by 0.03
