"""The shared training loop's stopping rules: convergence, time limit, iteration limit."""

import numpy as np
import pytest
import torch

from inr_blender.context import JobContext, JobError
from inr_blender.fitting import fit_sdf, resolve_params
from inr_blender.fitting.loop import READBACK_EVERY, StopRule, read_back, train


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


def quadratic_run(ctx, iterations=300, stop=None, nan_at=None):
    """The loop on the quadratic, with the test's own read of every step's loss beside it (NaN from step ``nan_at``)."""
    torch.manual_seed(0)
    net = Quadratic()
    seen = []

    def step_loss(i):
        loss = (net.w - 1).square().sum() + 1e-3 * torch.rand(())
        if nan_at is not None and i + 1 >= nan_at:
            loss = loss * float("nan")
        seen.append(float(loss.detach()))
        return loss

    return train(net, step_loss, iterations, 0.05, ctx, stop=stop), seen


@pytest.mark.parametrize("interval", [0.0, 1e9])  # every step read and reported; only the last step reported
def test_losses_read_back_late_are_every_steps_loss(interval):
    events = []
    result, seen = quadratic_run(JobContext(events.append, min_interval=interval), iterations=READBACK_EVERY + 300)
    assert result.losses == seen and len(seen) == READBACK_EVERY + 300
    steps = [e["step"] for e in events]
    assert steps[0] == 0 and steps[-1] == len(seen) and len(steps) == (len(seen) + 1 if interval == 0 else 2)
    assert all(e["loss"] == seen[e["step"] - 1] for e in events[1:])  # each report carries its own step's loss


def test_report_due_follows_the_rate_limit():
    import time

    sent = []
    ctx = JobContext(sent.append, min_interval=0.2)
    assert ctx.report_due(0, 10)
    ctx.progress(0, 10)
    assert not ctx.report_due(4, 10) and ctx.report_due(10, 10)  # the last step is always due
    ctx.progress(4, 10, 1.0)  # not due: not sent
    time.sleep(0.25)
    assert ctx.report_due(5, 10)
    ctx.progress(5, 10, 2.0)
    assert [e["step"] for e in sent] == [0, 5] and not ctx.report_due(6, 10)


@pytest.mark.parametrize("nan_at", [38, READBACK_EVERY + 7])  # before and after a read-back of a full batch
def test_divergence_names_the_first_bad_step(nan_at):
    with pytest.raises(JobError, match=f"training diverged at step {nan_at} "):
        quadratic_run(JobContext(min_interval=1e9), iterations=READBACK_EVERY + 50, nan_at=nan_at)


def test_read_back_keeps_the_order_and_promotes():
    losses = [0.5]
    pending = [torch.tensor(1.25), torch.tensor([2.5], dtype=torch.float64), torch.tensor(3.0)]
    read_back(pending, losses)
    assert losses == [0.5, 1.25, 2.5, 3.0] and pending == []
    with pytest.raises(JobError, match="at step 3 "):
        read_back([torch.tensor(1.0), torch.tensor(float("inf"))], [0.1])


def test_stop_rule_fires_at_the_same_step_without_reports():
    stop = StopRule(tolerance=0.01, window=50)
    every, _ = quadratic_run(JobContext(min_interval=0.0), iterations=5000, stop=stop)
    rarely, _ = quadratic_run(JobContext(min_interval=1e9), iterations=5000, stop=stop)
    assert every.stop_reason.startswith("converged after") and len(every.losses) < 5000
    assert rarely.stop_reason == every.stop_reason and rarely.losses == every.losses
