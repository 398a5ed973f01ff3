"""Add-on preferences: where the backend runs, and on which device."""

from __future__ import annotations

import os
import sys

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from .inr_blender import install
from .inr_blender.wire.client import BackendConfig, BackendError

ADDON_ID = __package__


def addon_prefs(context: bpy.types.Context | None = None) -> INR_AddonPreferences | None:
    """The add-on's preferences, or None when it is imported without being enabled."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def user_dir(*parts: str) -> str:
    """A writable per-user folder for the extension (managed backend, logs, unsaved checkpoints)."""
    try:
        base = bpy.utils.extension_path_user(ADDON_ID, create=True)
    except ValueError:  # loaded as a legacy add-on or a plain module (tests, scripts)
        base = bpy.utils.user_resource("DATAFILES", path="neural_fields", create=True)
    path = os.path.join(base, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def managed_venv() -> str:
    """The folder of the managed backend environment (may not exist yet)."""
    return os.path.join(user_dir(), "backend-venv")


def managed_python() -> str:
    """The interpreter of the managed backend environment (may not exist yet)."""
    return install.venv_python(managed_venv(), windows=sys.platform == "win32")


_TARGET: list[install.Target] = []


def this_machine() -> install.Target:
    """The platform and NVIDIA GPU the set-up chooses for (nvidia-smi asked once a session)."""
    if not _TARGET:
        _TARGET.append(install.detect())
    return _TARGET[0]


def install_plan(context: bpy.types.Context | None = None) -> install.Plan:
    """What Set up Backend will install here, by the preference's torch build (raises install.SetupError where none)."""
    prefs = addon_prefs(context)
    return install.plan_install(this_machine(), prefs.torch_build if prefs is not None else "AUTO")


def backend_config(context: bpy.types.Context | None = None) -> BackendConfig:
    """Translate the preferences into a :class:`BackendConfig`."""
    prefs = addon_prefs(context)
    logs = user_dir("logs")
    if prefs is None or prefs.backend_mode == "MANAGED":
        python = managed_python()
        if not os.path.exists(python):
            raise BackendError(
                "the managed backend is not set up: press 'Set up backend' in the add-on preferences, or choose an existing Python interpreter"
            )
        return BackendConfig(mode="PYTHON", python=python, log_dir=logs)
    if prefs.backend_mode == "PYTHON":
        return BackendConfig(mode="PYTHON", python=bpy.path.abspath(prefs.python_path), log_dir=logs)
    return BackendConfig(mode="REMOTE", host=prefs.remote_host, port=prefs.remote_port, token=prefs.remote_token, log_dir=logs)


def device_choice(context: bpy.types.Context | None = None) -> str:
    """The device the backend should use: 'auto', 'cuda', 'mps' or 'cpu'."""
    prefs = addon_prefs(context)
    return prefs.device.lower() if prefs is not None else "auto"


class INR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_mode: EnumProperty(
        name="Backend",
        items=[
            ("MANAGED", "Managed Environment", "A virtual environment the add-on creates and maintains"),
            ("PYTHON", "Existing Python", "A Python interpreter of your own that has the backend's packages"),
            ("REMOTE", "Remote Worker", "A worker started with 'python -m inr_blender serve' on another machine"),
        ],
        default="MANAGED",
    )
    torch_build: EnumProperty(
        name="Torch Build",
        items=[
            ("AUTO", "Auto", "CUDA for an NVIDIA GPU (the newest build its driver supports), PyPI's build on a Mac (MPS), else CPU"),
            ("CPU", "CPU", "The CPU build, even with an NVIDIA GPU (a smaller download)"),
            *((o, f"CUDA {o[2:-1]}.{o[-1]}", f"torch built with CUDA {o[2:-1]}.{o[-1]} (the driver must support it)") for o in install.OVERRIDES[2:]),
        ],
        default="AUTO",
        description="Which torch Set up Backend installs",
    )
    python_path: StringProperty(name="Python", subtype="FILE_PATH", description="Interpreter with torch, numpy, scipy and scikit-image")
    remote_host: StringProperty(name="Host", default="127.0.0.1")
    remote_port: IntProperty(name="Port", default=5555, min=1, max=65535)
    remote_token: StringProperty(name="Token", subtype="PASSWORD", description="The token the worker was started with")
    device: EnumProperty(
        name="Device",
        items=[
            ("AUTO", "Auto", "CUDA if present, else Apple MPS, else CPU"),
            ("CUDA", "CUDA", "NVIDIA GPU"),
            ("MPS", "MPS", "Apple GPU"),
            ("CPU", "CPU", "Processor only"),
        ],
        default="AUTO",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_mode")
        if self.backend_mode == "MANAGED":
            layout.label(text=managed_python())
            row = layout.row()
            row.prop(self, "torch_build")
            row.operator("inr.setup_backend", icon="IMPORT")
            try:
                layout.label(text=install_plan(context).explanation, icon="INFO")
            except install.SetupError as exc:
                layout.label(text=str(exc), icon="ERROR")
            if not bpy.app.online_access:
                layout.label(text="Online access is off (Preferences > System > Network): set-up cannot download", icon="ERROR")
        elif self.backend_mode == "PYTHON":
            layout.prop(self, "python_path")
        else:
            row = layout.row()
            row.prop(self, "remote_host")
            row.prop(self, "remote_port")
            layout.prop(self, "remote_token")
        layout.prop(self, "device")
        state = context.window_manager.inr_backend
        row = layout.row()
        row.label(text=state.status or "Backend not checked yet", icon="CHECKMARK" if state.ready else "INFO")
        row.operator("inr.check_backend", icon="FILE_REFRESH")
        if state.setup_running:
            row = layout.row()
            row.progress(factor=state.setup_progress, type="BAR", text=state.setup_message)
            row.operator("inr.cancel_job", text="", icon="CANCEL")
