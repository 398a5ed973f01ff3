"""The shared training loop's stopping rules: convergence, time limit, iteration limit."""

import numpy as np
import pytest
import torch

from inr_blender.context import JobContext
from inr_blender.fitting import fit_sdf, resolve_params
from inr_blender.fitting.loop import StopRule, train


class Quadratic(torch.nn.Module):
    """loss = |w - 1|^2 with a little noise: converges in a few hundred Adam steps at lr 0.05."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4))


def run(stop, iterations=5000):
    torch.manual_seed(0)
    net = Quadratic()
    return train(net, lambda _: (net.w - 1).square().sum() + 1e-3 * torch.rand(()), iterations, 0.05, JobContext(), stop=stop)


def test_stops_when_the_loss_stops_improving():
    result = run(StopRule(tolerance=0.01, window=50))
    assert result.stop_reason.startswith("converged after")
    assert 100 <= len(result.losses) < 5000 and len(result.losses) % 50 == 0
    window = np.mean(result.losses[-50:])
    assert abs(np.mean(result.losses[-100:-50]) - window) < 0.01 * np.mean(result.losses[-100:-50]) + 1e-3


def test_no_tolerance_runs_to_the_iteration_limit():
    result = run(StopRule(tolerance=0.0), iterations=300)
    assert len(result.losses) == 300 and result.stop_reason == "reached the iteration limit (300 steps)"


def test_min_iterations_holds_off_convergence():
    result = run(StopRule(tolerance=0.5, window=10, min_iterations=400))
    assert len(result.losses) >= 400 and result.stop_reason.startswith("converged")


def test_time_limit():
    result = run(StopRule(max_seconds=0.2), iterations=10_000_000)
    assert result.stop_reason.startswith("reached the time limit (0.2 s) after")
    assert len(result.losses) < 10_000_000


def test_fit_reports_why_it_stopped():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(2000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    params = {"method": "igr", "iterations": 100_000, "width": 16, "depth": 2, "batch_size": 128, "device": "cpu", "max_seconds": 1.0}
    ckpt = fit_sdf(d, d, resolve_params(params), JobContext())
    assert ckpt["stop_reason"].startswith("reached the time limit (1 s)") and ckpt["iterations_run"] < 100_000
    assert ckpt["loss_history"][-1][0] == ckpt["iterations_run"]


@pytest.mark.parametrize("bad", [{"convergence_tolerance": -1}, {"max_seconds": -5}, {"convergence_window": 0}])
def test_bad_stopping_parameters(bad):
    from inr_blender.context import JobError
    from inr_blender.fitting import resolve_params

    with pytest.raises(JobError, match="must be"):
        resolve_params({"method": "igr", **bad})


def test_a_call_that_cannot_see_cancel_is_left_at_once_on_cancel():
    """run_cancellable (the skeleton's MILP runs through it): Cancel raises within a poll, however long the call."""
    import threading
    import time

    from inr_blender.context import Cancelled

    cancel = threading.Event()
    ctx = JobContext(cancel_event=cancel)
    assert ctx.run_cancellable(lambda: 6 * 7) == 42
    with pytest.raises(ZeroDivisionError):  # the call's own error reaches the caller
        ctx.run_cancellable(lambda: 1 / 0)
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        ctx.run_cancellable(lambda: time.sleep(5.0))
    assert time.monotonic() - started < 1.0
