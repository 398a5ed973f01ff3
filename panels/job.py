"""The job in flight (progress, loss, Cancel) and the backend's status."""

from __future__ import annotations

import bpy

from .base import INRPanel
from .loss_plot import image_icon, psnr_icon


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
        image = bpy.data.images.get(job.preview_image) if job.preview_image else None
        if image is not None or len(job.psnr_history) > 1:  # a fit's live preview, collapsible
            header, body = layout.panel("inr_job_preview")
            header.label(text="Preview")
            if body is not None:
                if image is not None:
                    body.template_icon(icon_value=image_icon(image), scale=6.0)
                if len(job.psnr_history) > 1:
                    body.label(text=f"PSNR {job.psnr_history[0].value:.1f} → {job.psnr_history[-1].value:.1f} dB")
                    body.template_icon(icon_value=psnr_icon(job), scale=4.0)
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
