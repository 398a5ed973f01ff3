"""Base for operators that run a backend job.

In the UI the job runs modal (as in Blender's ``operator_modal_timer`` template):
the scene stays usable, the panel and status bar show progress, and Esc or the
Cancel button stops it. In background mode (``bpy.app.background``) the same
operator blocks and prints progress to stdout. Nothing touches the scene until
the result is in, so a cancelled or failed job leaves the scene as it was.

A fit whose job sends live previews (``preview_every``) shows them while it runs (``_preview_name``:
``common/preview.py``); they are removed when the job ends, before the result lands, or on Cancel or failure.
Headless, previews are off unless the caller sets ``preview_every``.

An operator may chain several jobs (``next_job``): one progress bar runs over
the chain, Cancel stops whichever job is in flight, and the scene is written
once, after the last job.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

import bpy

from ...inr_blender.settings.preview import PREVIEW_EVERY, UI_EVERY
from ...inr_blender.wire.client import BackendError, Job, JobOutcome, get_backend
from ...preferences import backend_config, device_choice
from ...properties.defaults import prop_from_param
from . import preview
from .bridge import InputError, remove_objects

_running: list[JobOperator] = []  # the operator whose job is in flight (one at a time)


def job_running() -> bool:
    return bool(_running)


JobSpec = tuple[str, dict[str, Any], dict[str, np.ndarray]]  # a job's name, params and arrays


class JobOperator:
    """Mixin for ``bpy.types.Operator``: subclasses set ``job_name``, ``prepare`` and ``finish``.

    A chain of jobs overrides ``first_job`` and ``next_job`` instead of ``prepare`` and sets
    ``_stages`` (the number of jobs, for the progress bar) and ``_stage_label`` (what runs now).
    """

    job_name = ""
    _stages = 1
    _stage = 0
    _stage_label = ""
    _preview_name = ""  # the live preview's object or image (set by operators whose jobs send previews)

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Read the scene; return the job's params and arrays, or raise :class:`InputError`."""
        raise NotImplementedError

    def first_job(self, context: bpy.types.Context) -> JobSpec:
        """The first (or only) job: ``job_name`` with what ``prepare`` returns."""
        return (self.job_name, *self.prepare(context))

    def next_job(self, context: bpy.types.Context, outcome: JobOutcome) -> JobSpec | None:
        """The job that follows a finished one in a chain (None: ``outcome`` is the last one's)."""
        return None

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        """Write the result into the scene; append every new object to ``created``."""
        raise NotImplementedError

    def fill_unset(self, values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        """``values`` with ``defaults`` (a preset's, a method's) in place of the settings the caller did not set."""
        for name, value in defaults.items():
            if not self.properties.is_property_set(name):
                values[name] = value
        return values

    def draw_preset(self, layout: bpy.types.UILayout, names, values: dict[str, Any]) -> bpy.types.UILayout:
        """A box listing what a preset runs (the settings ``names`` with their ``values``); Custom edits them."""
        box = layout.box()
        for name in names:
            box.label(text=f"{self.properties.bl_rna.properties[name].name}: {values[name]}")
        return box

    def discard(self) -> None:
        """The operator failed or was cancelled: remove the files its jobs wrote, listed in ``_written``."""
        for path in getattr(self, "_written", []):
            try:
                os.remove(path)
            except OSError:
                pass
        self._written = []

    # -- shared machinery ---------------------------------------------------------------
    def _submit(self, context: bpy.types.Context) -> Job:
        if _running:
            raise InputError("another neural-field job is running: wait for it or cancel it")
        self._stage = 0
        state = context.window_manager.inr_job
        state.psnr_history.clear()
        state.preview_image = ""
        return self._send(context, self.first_job(context))

    def _show_preview(self, context: bpy.types.Context, event: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if self._preview_name:
            preview.show(context, self._preview_name, event, arrays)

    def _progressed(self, context: bpy.types.Context, event: dict[str, Any]) -> None:
        if event.get("psnr") is not None:
            preview.record_psnr(context, int(event.get("step") or 0), float(event["psnr"]))

    def _end_preview(self) -> None:
        if self._preview_name:
            preview.remove(self._preview_name)

    def _send(self, context: bpy.types.Context, spec: JobSpec) -> Job:
        name, params, arrays = spec
        params.setdefault("device", device_choice(context))
        return get_backend(backend_config(context)).submit(name, params, arrays)

    def _advance(self, context: bpy.types.Context, outcome: JobOutcome) -> Job | None:
        """Submit the chain's next job after a finished one; None when there is none (or raise)."""
        if outcome.status != "finished":
            return None
        spec = self.next_job(context, outcome)
        if spec is None:
            return None
        self._stage += 1
        return self._send(context, spec)

    def _fraction(self, job: Job) -> float:
        return (self._stage + job.fraction) / max(1, self._stages)

    def _fail(self, message: str) -> set[str]:
        self._end_preview()
        self.discard()
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

    def _complete(self, context: bpy.types.Context, outcome: JobOutcome) -> set[str]:
        self._end_preview()  # the result takes its place
        if outcome.status == "cancelled":
            self.discard()
            self.report({"WARNING"}, f"{self.bl_label}: cancelled")
            return {"CANCELLED"}
        if outcome.status != "finished":
            return self._fail(outcome.message)
        created: list = []
        try:
            self.finish(context, outcome, created)
        except (InputError, BackendError) as exc:
            remove_objects(created)
            return self._fail(str(exc))
        except Exception:
            remove_objects(created)
            self.discard()
            raise
        return {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        # modal in the UI; blocking headless and when redone from the Adjust Last Operation panel
        interactive = not bpy.app.background and context.window is not None and not self.options.is_repeat
        try:
            job = self._submit(context)
        except (InputError, BackendError) as exc:
            return self._fail(str(exc))
        if interactive:
            return self._start_modal(context, job)
        last = [0.0]

        def echo(event: dict[str, Any]) -> None:
            self._progressed(context, event)
            now = time.monotonic()
            if now - last[0] >= 1.0 or event["step"] == event["total"]:
                last[0] = now
                loss = "" if event.get("loss") is None else f" loss {event['loss']:.5g}"
                psnr = "" if event.get("psnr") is None else f" PSNR {event['psnr']:.2f} dB"
                stage = f" [{self._stage + 1}/{self._stages} {self._stage_label}]" if self._stages > 1 else ""
                print(f"INR {job.name}{stage}: {event['step']}/{event['total']}{loss}{psnr} {event.get('message') or ''}", flush=True)

        while True:
            try:
                outcome = job.wait(echo, on_preview=lambda event, arrays: self._show_preview(context, event, arrays))
            except KeyboardInterrupt:
                job.cancel()
                outcome = job.wait()
            try:
                following = self._advance(context, outcome)
            except (InputError, BackendError) as exc:
                return self._fail(str(exc))
            if following is None:
                return self._complete(context, outcome)
            job = following

    # -- modal (UI) ----------------------------------------------------------------------
    def _start_modal(self, context: bpy.types.Context, job: Job) -> set[str]:
        self._job = job
        start_modal(self, context, "starting", 0.1)
        return {"RUNNING_MODAL"}

    def _end_modal(self, context: bpy.types.Context) -> None:
        end_modal(self, context)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        state = context.window_manager.inr_job
        escape = event.type == "ESC" and event.value == "PRESS"
        if escape or state.cancel_requested:
            state.message = "cancelling"
            self._job.cancel()
        if escape:
            return {"RUNNING_MODAL"}  # Esc is ours while a job runs
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            for progressed in self._job.poll():
                self._progressed(context, progressed)
        except BackendError as exc:
            self._end_modal(context)
            return self._fail(str(exc))
        shown = self._job.take_preview() if not self._job.done else None
        if shown is not None:
            self._show_preview(context, *shown)
        p = self._job.progress
        state.progress, state.step, state.total = self._fraction(self._job), p.get("step") or 0, p.get("total") or 0
        state.has_loss = p.get("loss") is not None
        state.loss = p.get("loss") or 0.0
        state.has_psnr = p.get("psnr") is not None
        state.psnr = p.get("psnr") or 0.0
        stage = f"{self._stage + 1}/{self._stages} {self._stage_label}" if self._stages > 1 else ""
        if not state.cancel_requested:
            state.message = " · ".join(m for m in (stage, p.get("message") or "") if m)
        if context.workspace is not None:
            loss = f"  loss {state.loss:.4g}" if state.has_loss else ""
            psnr = f"  PSNR {state.psnr:.2f} dB" if state.has_psnr else ""
            context.workspace.status_text_set(
                f"{self.bl_label}{f' ({stage})' if stage else ''}: {state.step}/{state.total}{loss}{psnr}  (Esc to cancel)"
            )
        redraw(context)
        if not self._job.done:
            return {"PASS_THROUGH"}
        try:
            following = self._advance(context, self._job.outcome)
        except (InputError, BackendError) as exc:
            self._end_modal(context)
            return self._fail(str(exc))
        if following is not None:
            self._job = following
            return {"PASS_THROUGH"}
        self._end_modal(context)
        return self._complete(context, self._job.outcome)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal operator (a file is loaded, the window closes): stop the job too."""
        self._job.cancel()
        self._end_modal(context)
        self._end_preview()
        self.discard()


class FitJobOperator(JobOperator):
    """A fit: Object Mode only; in the UI its settings open in a dialog first, headless it runs at once."""

    dialog_width = 320

    def preview_seconds(self) -> float:
        """The job's ``preview_every``: the operator's (2 s by default in the UI), 0 headless unless set."""
        if bpy.app.background and not self.properties.is_property_set("preview_every"):
            return 0.0
        return float(getattr(self, "preview_every", 0.0))

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        return context.window_manager.invoke_props_dialog(self, width=self.dialog_width)


def preview_property():
    """The fits' Preview Every setting: the backend's ``preview_every``, on by default in the UI."""
    text = "Seconds between two live previews while fitting: a coarse surface, or a small view from the scene camera (0: off)"
    return prop_from_param(PREVIEW_EVERY, default=UI_EVERY, soft_max=60.0, subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE", description=text)


def start_modal(op: bpy.types.Operator, context: bpy.types.Context, message: str, interval: float, total: int = 0) -> None:
    """Show ``op`` as the running job (panel, status bar), start its timer and its modal handler.

    ``op`` needs a ``_job`` with ``cancel()`` (stopped on unregister) and ``op._timer`` is set here.
    """
    state = context.window_manager.inr_job
    state.running, state.name, state.progress, state.message = True, op.bl_label, 0.0, message
    state.step, state.total = 0, total
    state.cancel_requested, state.has_loss, state.has_psnr = False, False, False
    op._timer = context.window_manager.event_timer_add(interval, window=context.window)
    context.window_manager.modal_handler_add(op)
    _running.append(op)


def end_modal(op: bpy.types.Operator, context: bpy.types.Context) -> None:
    """Undo :func:`start_modal`: timer, job state, status text; redraw the panels."""
    wm = context.window_manager
    wm.event_timer_remove(op._timer)
    wm.inr_job.running = False
    wm.inr_job.cancel_requested = False
    if context.workspace is not None:
        context.workspace.status_text_set(None)
    if op in _running:
        _running.remove(op)
    redraw(context)


def redraw(context: bpy.types.Context) -> None:
    screen = context.screen
    if screen is None:
        return
    for area in screen.areas:
        if area.type in {"VIEW_3D", "PREFERENCES"}:
            area.tag_redraw()


def cancel_running_jobs() -> None:
    """Ask every running job to stop (used on unregister)."""
    for op in list(_running):
        op._job.cancel()
