"""Backend operators: check the worker, set up the managed environment, cancel a job."""

from __future__ import annotations

import os
import threading

import bpy

from ..inr_blender import install
from ..inr_blender.wire.client import BackendError, get_backend, shutdown_backend
from ..preferences import addon_prefs, backend_config, device_choice, install_plan, managed_venv, user_dir
from .common.job import job_running


def check_backend(context: bpy.types.Context) -> dict:
    """Start (or reach) the worker, ask what it runs on, and record it for the UI."""
    state = context.window_manager.inr_backend
    try:
        params = {"device": device_choice(context), "throughput": True}
        info = get_backend(backend_config(context)).run("info", params).params
    except BackendError as exc:
        state.ready, state.status = False, f"Backend not ready: {exc}"
        raise
    state.ready = True
    state.torch_version, state.device = info["torch_version"], info["device"]
    state.status = backend_summary(info)
    return info


def backend_summary(info: dict) -> str:
    """One line: torch, the device (name, memory) and the Fast preset's measured steps per second."""
    memory = info.get("device_memory_bytes", 0) / 2**30
    rate = info.get("fast_steps_per_second")
    name = info.get("device_name", info["device"])
    return (
        f"Backend ready: torch {info['torch_version']} on {info['device']} ({name}, {memory:.1f} GiB)"
        + (f", Fast preset {rate:g} steps/s" if rate else "")
        + f" (Python {info['python']})"
    )


class INR_OT_check_backend(bpy.types.Operator):
    """Start the backend worker and report which torch and device it found"""

    bl_idname = "inr.check_backend"
    menu_entry = ("backend", 2, "FILE_REFRESH")  # the Object menu: section, order, icon
    bl_label = "Check Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if job_running():
            self.report({"ERROR"}, "a job is running; check the backend when it is done")
            return {"CANCELLED"}
        try:
            check_backend(context)
        except BackendError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, context.window_manager.inr_backend.status)
        return {"FINISHED"}


class INR_OT_cancel_job(bpy.types.Operator):
    """Stop the running neural-field job; the scene stays as it was"""

    bl_idname = "inr.cancel_job"
    menu_entry = ("backend", 1, "CANCEL")  # the Object menu: section, order, icon
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.window_manager.inr_job.running or context.window_manager.inr_backend.setup_running

    def execute(self, context: bpy.types.Context) -> set[str]:
        if context.window_manager.inr_backend.setup_running:
            context.window_manager.inr_backend.setup_cancel = True
        else:
            context.window_manager.inr_job.cancel_requested = True
        return {"FINISHED"}


class INR_OT_setup_backend(bpy.types.Operator):
    """Create a virtual environment under the extension's user folder and install the torch build that suits this
    machine (CUDA for an NVIDIA GPU, MPS on Apple silicon, else CPU) and the backend's other packages into it"""

    bl_idname = "inr.setup_backend"
    bl_label = "Set up Backend"

    _timer = None
    _thread = None

    def execute(self, context: bpy.types.Context) -> set[str]:
        if job_running():
            self.report({"ERROR"}, "a job is running; set up the backend when it is done")
            return {"CANCELLED"}
        try:
            plan = install_plan(context)
        except install.SetupError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not bpy.app.online_access:
            self.report({"ERROR"}, "online access is disabled (Preferences > System > Network): the backend's packages cannot be downloaded")
            return {"CANCELLED"}
        self.report({"INFO"}, plan.explanation)  # said before the download starts
        print(f"Set up Backend: {plan.explanation}", flush=True)
        shutdown_backend()  # a worker of the old environment would hold it open while it is replaced
        venv, log = managed_venv(), os.path.join(user_dir("logs"), "setup.log")
        state = context.window_manager.inr_backend
        state.setup_running, state.setup_cancel, state.setup_progress, state.setup_message = True, False, 0.0, plan.explanation
        self._status: dict = {"fraction": 0.0, "message": plan.explanation, "error": "", "done": False, "cancel": False}
        self._background = bpy.app.background or context.window is None

        def progress(p: install.Progress) -> None:
            if self._background and p.message != self._status["message"]:
                print(f"Set up Backend [{p.fraction:4.0%}] {p.message}", flush=True)
            self._status["fraction"], self._status["message"] = p.fraction, p.message

        def run() -> None:
            try:
                install.setup_environment(
                    venv,
                    plan,
                    online_access=bpy.app.online_access,
                    on_progress=progress,
                    cancelled=lambda: self._status["cancel"],
                    log_path=log,
                )
            except install.SetupError as exc:
                self._status["error"] = str(exc)
            except Exception as exc:  # anything else still ends the set-up with one line, never a hung modal
                self._status["error"] = f"set-up failed: {exc}; see {log}"
            self._status["done"] = True

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if self._background:
            self._thread.join()
            return self._done(context)
        self._timer = context.window_manager.event_timer_add(0.25, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        state = context.window_manager.inr_backend
        if event.type == "ESC" or state.setup_cancel:
            self._status["cancel"] = True
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state.setup_progress, state.setup_message = self._status["fraction"], self._status["message"]
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()
        if not self._status["done"]:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._done(context)

    def _done(self, context: bpy.types.Context) -> set[str]:
        state = context.window_manager.inr_backend
        state.setup_running, state.setup_cancel = False, False
        if self._status["error"]:
            state.setup_message = self._status["error"]
            self.report({"ERROR"}, self._status["error"])
            return {"CANCELLED"}
        prefs = addon_prefs(context)
        if prefs is not None:
            prefs.backend_mode = "MANAGED"
        try:
            check_backend(context)
        except BackendError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, state.status)
        return {"FINISHED"}
