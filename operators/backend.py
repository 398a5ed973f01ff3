"""Backend operators: check the worker, set up the managed environment, cancel a job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import bpy

from ..inr_blender.wire.client import ADDON_ROOT, BackendError, get_backend
from ..preferences import addon_prefs, backend_config, device_choice, managed_python, user_dir
from .common.job import job_running

REQUIREMENTS = os.path.join(ADDON_ROOT, "inr_blender", "requirements.txt")


def check_backend(context: bpy.types.Context) -> dict:
    """Start (or reach) the worker, ask what it runs on, and record it for the UI."""
    state = context.window_manager.inr_backend
    try:
        info = get_backend(backend_config(context)).run("info", {"device": device_choice(context)}).params
    except BackendError as exc:
        state.ready, state.status = False, f"Backend not ready: {exc}"
        raise
    state.ready = True
    state.torch_version, state.device = info["torch_version"], info["device"]
    state.status = f"Backend ready: torch {info['torch_version']} on {info['device']} (Python {info['python']})"
    return info


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
        return context.window_manager.inr_job.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.window_manager.inr_job.cancel_requested = True
        return {"FINISHED"}


def setup_commands(venv: str, python: str) -> list[list[str]]:
    """The commands that create the managed environment and install the backend's requirements."""
    return [
        [sys.executable, "-m", "venv", venv],
        [python, "-m", "pip", "install", "--upgrade", "pip"],
        [python, "-m", "pip", "install", "-r", REQUIREMENTS],
    ]


class INR_OT_setup_backend(bpy.types.Operator):
    """Create a virtual environment under the extension's user folder and install the backend into it"""

    bl_idname = "inr.setup_backend"
    bl_label = "Set up Backend"

    _timer = None
    _thread = None

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not bpy.app.online_access:
            self.report({"ERROR"}, "online access is disabled (Preferences > System > Network): the backend's packages cannot be downloaded")
            return {"CANCELLED"}
        python = managed_python()
        venv = os.path.dirname(os.path.dirname(python))
        self._commands = setup_commands(venv, python)
        self._log = os.path.join(user_dir("logs"), "setup.log")
        self._status = {"step": 0, "line": "creating the environment", "error": "", "done": False}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        state = context.window_manager.inr_backend
        state.setup_running, state.setup_progress, state.setup_message = True, 0.0, "starting"
        if bpy.app.background or context.window is None:
            self._thread.join()
            return self._done(context)
        self._timer = context.window_manager.event_timer_add(0.25, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _run(self) -> None:
        with open(self._log, "w") as log:
            for i, cmd in enumerate(self._commands):
                self._status["step"] = i
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
                for line in proc.stdout:
                    log.write(line)
                    m = re.match(r"\s*(Collecting|Downloading|Installing|Successfully)\b.*", line)
                    if m:
                        self._status["line"] = line.strip()[:80]
                if proc.wait() != 0:
                    self._status["error"] = f"'{' '.join(cmd[:4])} ...' failed; see {self._log}"
                    break
        self._status["done"] = True

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = context.window_manager.inr_backend
        state.setup_progress = (self._status["step"] + 0.5) / len(self._commands)
        state.setup_message = self._status["line"]
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()
        if not self._status["done"]:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._done(context)

    def _done(self, context: bpy.types.Context) -> set[str]:
        state = context.window_manager.inr_backend
        state.setup_running = False
        if self._status["error"]:
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
