"""The job in flight (progress, loss, Cancel) and the backend's status."""

from __future__ import annotations

import bpy

from .base import INRPanel


class VIEW3D_PT_inr_job(INRPanel, bpy.types.Panel):
    bl_label = "Job"
    bl_idname = "VIEW3D_PT_inr_job"
    bl_order = 0

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.window_manager.inr_job.running

    def draw(self, context: bpy.types.Context) -> None:
        job = context.window_manager.inr_job
        layout = self.layout
        text = f"{job.name}: {job.step}/{job.total}"
        layout.progress(factor=job.progress, type="BAR", text=text)
        if job.has_loss:
            layout.label(text=f"Loss {job.loss:.5g}")
        if job.has_psnr:
            layout.label(text=f"PSNR {job.psnr:.2f} dB")
        if job.message:
            layout.label(text=job.message)
        layout.operator("inr.cancel_job", icon="CANCEL")


class VIEW3D_PT_inr_backend(INRPanel, bpy.types.Panel):
    bl_label = "Backend"
    bl_idname = "VIEW3D_PT_inr_backend"
    bl_order = 3
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        state = context.window_manager.inr_backend
        layout = self.layout
        layout.label(text=state.status or "Not checked yet", icon="CHECKMARK" if state.ready else "INFO")
        layout.operator("inr.check_backend", icon="FILE_REFRESH")
