"""Render Training Views: every camera of a rig, with the scene's render engine, plus transforms.json.

The folder gets ``r_000.png``, ``r_001.png``, ... (one per camera, in the order of the
cameras' names) and ``transforms.json`` in NeRF-synthetic form, with the instant-ngp /
nerfstudio intrinsics beside it:

- ``camera_angle_x`` (the horizontal field of view, radians), ``camera_model`` "PINHOLE",
  ``fl_x``, ``fl_y``, ``cx``, ``cy`` (pixels; pixel centres at +0.5, origin at the top-left
  corner), ``w``, ``h``; a frame whose camera differs from the first one repeats these keys;
- ``aabb``: the rig's scene box [[x0, y0, z0], [x1, y1, z1]] (world units);
- ``frames``: ``file_path`` relative to the file *with* its extension ("./r_000.png", as
  instant-ngp and nerfstudio read it; NeRF-synthetic's own files leave it out), and
  ``transform_matrix``, the camera-to-world matrix (Blender/OpenGL camera: looks down -Z, +Y
  up) with the camera object's scale removed.

Images are rendered into a hidden folder first and moved in place at the end, so a cancelled
or failed render leaves an earlier complete set as it was. The scene's camera and the render
settings the operator touches (output path, file format, transparency) are restored.
In the UI the views render one per timer tick (Esc or Cancel stops between views); in the
background the operator blocks (Ctrl+C stops it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from typing import Any

import numpy as np

import bpy
from bpy.props import BoolProperty, StringProperty

from ..inr_blender.outputs import atomic_write
from ..preferences import user_dir
from .common.bridge import InputError
from .common.cameras import angle_x, camera_to_world, check_perspective, intrinsics
from .common.job import end_modal, job_running, redraw, start_modal
from .common.rig import TRANSFORMS, find_rig, rig_aabb, rig_cameras

_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


def default_views_dir(rig: bpy.types.Collection) -> tuple[str, str]:
    """(absolute folder, folder to store): ``//<rig>_views/`` beside a saved .blend, else under the user folder."""
    name = bpy.path.clean_name(rig.name)
    if bpy.data.filepath:
        stored = f"//{name}_views/"
        return bpy.path.abspath(stored), stored
    path = os.path.join(user_dir("views"), f"{name}_{uuid.uuid4().hex[:8]}")
    return path, path


def views_dir_of(rig: bpy.types.Collection) -> str:
    """The absolute folder the rig's views were rendered to, or ''."""
    stored = rig.get("inr_views")
    return bpy.path.abspath(stored) if stored else ""


def camera_entry(scene: bpy.types.Scene, cam: bpy.types.Object) -> dict[str, Any]:
    """The intrinsics keys of transforms.json for one camera."""
    fx, fy, cx, cy, w, h = intrinsics(scene, cam)
    return {"camera_angle_x": angle_x(fx, w), "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": w, "h": h}


def transforms_document(scene: bpy.types.Scene, rig: bpy.types.Collection, cameras: list, files: list[str]) -> dict[str, Any]:
    """transforms.json's content for ``cameras`` rendered to ``files`` (names in the folder)."""
    first = camera_entry(scene, cameras[0])
    doc: dict[str, Any] = {"camera_angle_x": first["camera_angle_x"], "camera_model": "PINHOLE"}
    doc.update({k: first[k] for k in _INTRINSIC_KEYS})
    box = rig_aabb(rig)
    if box is not None:
        doc["aabb"] = box
    doc["rig"] = rig.name
    frames = []
    for cam, name in zip(cameras, files):
        frame: dict[str, Any] = {"file_path": f"./{name}", "camera": cam.name}
        entry = camera_entry(scene, cam)
        if any(not np.isclose(entry[k], first[k]) for k in ("camera_angle_x",) + _INTRINSIC_KEYS):
            frame.update(entry)
        frame["transform_matrix"] = camera_to_world(cam).tolist()
        frames.append(frame)
    doc["frames"] = frames
    return doc


class _Render:
    """One run over a rig: the plan, the settings to restore, and how far it got."""

    def __init__(self, scene: bpy.types.Scene, rig: bpy.types.Collection, cameras: list, folder: str, stored: str, transparent: bool) -> None:
        self.scene, self.rig, self.cameras = scene, rig, cameras
        self.folder, self.stored = folder, stored
        self.tmp = os.path.join(folder, f".rendering-{uuid.uuid4().hex[:8]}")
        self.files = [f"r_{k:03d}.png" for k in range(len(cameras))]
        self.index = 0
        self.cancelled = False
        r, im = scene.render, scene.render.image_settings
        self.saved = {
            "camera": scene.camera,
            "filepath": r.filepath,
            "film_transparent": r.film_transparent,
            "use_file_extension": r.use_file_extension,
            "file_format": im.file_format,
            "color_depth": im.color_depth,
            "color_mode": im.color_mode,
        }
        os.makedirs(self.tmp, exist_ok=True)
        r.film_transparent = transparent
        r.use_file_extension = False
        im.file_format = "PNG"
        im.color_depth = "8"
        im.color_mode = "RGBA" if transparent else "RGB"

    @property
    def done(self) -> bool:
        return self.index >= len(self.cameras)

    def cancel(self) -> None:  # what job.cancel_running_jobs() calls
        self.cancelled = True

    def render_next(self) -> None:
        cam = self.cameras[self.index]
        path = os.path.join(self.tmp, self.files[self.index])
        self.scene.camera = cam
        self.scene.render.filepath = path
        bpy.ops.render.render(write_still=True, scene=self.scene.name)
        if not os.path.isfile(path):
            raise InputError(f"the render of '{cam.name}' was not written to {path}")
        self.index += 1

    def restore(self) -> None:
        s = self.saved
        try:
            r, im = self.scene.render, self.scene.render.image_settings
        except ReferenceError:  # the scene is gone (another file was loaded)
            return
        self.scene.camera = s["camera"]
        r.filepath, r.film_transparent, r.use_file_extension = s["filepath"], s["film_transparent"], s["use_file_extension"]
        im.file_format = s["file_format"]
        for key in ("color_depth", "color_mode"):
            try:
                setattr(im, key, s[key])
            except TypeError:  # the format does not offer it
                pass

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def commit(self) -> str:
        """Move the images in place, write transforms.json, mark the rig; return the json's path."""
        doc = transforms_document(self.scene, self.rig, self.cameras, self.files)
        for name in self.files:
            os.replace(os.path.join(self.tmp, name), os.path.join(self.folder, name))
        path = os.path.join(self.folder, TRANSFORMS)
        with atomic_write(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
        self.discard()
        self.rig["inr_views"] = self.stored
        return path


class INR_OT_render_training_views(bpy.types.Operator):
    """Render every camera of the camera rig with the scene's render engine, and write transforms.json for Fit NeRF"""

    bl_idname = "inr.render_training_views"
    menu_entry = ("nerf", 2, "RENDER_STILL")  # the Object menu: section, order, icon
    bl_label = "Render Training Views"
    bl_options = {"UNDO"}  # no redo panel: redoing would render everything again

    directory: StringProperty(
        name="Folder",
        subtype="DIR_PATH",
        options={"PATH_SUPPORTS_BLEND_RELATIVE"},
        description="Where the images and transforms.json go; empty: //<rig>_views/ beside a saved .blend, else the add-on's user folder",
    )
    transparent: BoolProperty(
        name="Transparent",
        default=False,
        description="Transparent film: RGBA images, the background left out (Fit NeRF puts its background colour there)",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def _plan(self, context: bpy.types.Context) -> _Render:
        if job_running():
            raise InputError("another neural-field job is running: wait for it or cancel it")
        scene = context.scene
        rig = find_rig(context)
        cameras = rig_cameras(rig)
        if not cameras:
            raise InputError(f"the rig '{rig.name}' has no cameras")
        for cam in cameras:
            check_perspective(cam)
        for cam in cameras:
            intrinsics(scene, cam)  # refuses a zero resolution
        if self.directory:
            stored = self.directory
            if stored.startswith("//") and not bpy.data.filepath:
                raise InputError(f"the folder {stored} is relative to the .blend, which is not saved yet: save it or choose an absolute folder")
            folder = bpy.path.abspath(stored)
        elif rig.get("inr_views"):
            stored = rig["inr_views"]
            folder = bpy.path.abspath(stored)
        else:
            folder, stored = default_views_dir(rig)
        if bpy.data.filepath and not stored.startswith("//"):
            try:
                stored = bpy.path.relpath(folder)
            except ValueError:  # another drive
                pass
        try:
            os.makedirs(folder, exist_ok=True)
            return _Render(scene, rig, cameras, os.path.abspath(folder), stored, self.transparent)
        except OSError as exc:
            raise InputError(f"cannot write the views to {folder}: {exc.strerror or exc}") from None

    def _finish(self, context: bpy.types.Context, run: _Render) -> set[str]:
        run.restore()
        if run.cancelled:
            run.discard()
            self.report({"WARNING"}, f"{self.bl_label}: cancelled after {run.index} of {len(run.cameras)} views")
            return {"CANCELLED"}
        try:
            path = run.commit()
        except OSError as exc:
            run.discard()
            self.report({"ERROR"}, f"cannot write the views to {run.folder}: {exc.strerror or exc}")
            return {"CANCELLED"}
        w, h = intrinsics(run.scene, run.cameras[0])[4:]
        self.report({"INFO"}, f"Rendered {len(run.cameras)} views of '{run.rig.name}' at {w}x{h} to {path}")
        return {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            run = self._plan(context)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not bpy.app.background and context.window is not None:
            return self._start_modal(context, run)
        started = time.monotonic()
        try:
            while not run.done:
                run.render_next()
                print(f"INR render_training_views: {run.index}/{len(run.cameras)} ({time.monotonic() - started:.1f} s)", flush=True)
        except KeyboardInterrupt:
            run.cancelled = True
        except InputError as exc:
            run.restore()
            run.discard()
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception:
            run.restore()
            run.discard()
            raise
        return self._finish(context, run)

    # -- modal (UI): one view per timer tick ---------------------------------------------
    def _start_modal(self, context: bpy.types.Context, run: _Render) -> set[str]:
        self._run = run
        self._job = run  # job.cancel_running_jobs() cancels it like a backend job
        start_modal(self, context, "rendering", 0.05, total=len(run.cameras))
        return {"RUNNING_MODAL"}

    def _end_modal(self, context: bpy.types.Context) -> None:
        end_modal(self, context)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        run, state = self._run, context.window_manager.inr_job
        escape = event.type == "ESC"
        if (escape and event.value == "PRESS") or state.cancel_requested:
            run.cancelled = True
        if not run.cancelled and not run.done:
            if event.type != "TIMER":
                return {"RUNNING_MODAL"} if escape else {"PASS_THROUGH"}  # Esc is ours while rendering
            try:
                run.render_next()
            except Exception as exc:
                self._end_modal(context)
                run.restore()
                run.discard()
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
            state.step, state.progress = run.index, run.index / len(run.cameras)
            state.message = f"rendered {run.cameras[run.index - 1].name}"
            if context.workspace is not None:
                context.workspace.status_text_set(f"{self.bl_label}: {run.index}/{len(run.cameras)}  (Esc to cancel)")
            redraw(context)
        if not run.cancelled and not run.done:
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        return self._finish(context, run)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal operator (a file is loaded, the window closes)."""
        self._run.cancelled = True
        self._end_modal(context)
        self._run.restore()
        self._run.discard()
