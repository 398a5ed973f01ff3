"""Sidebar panels and menus (drawing only)."""

from .menu import VIEW3D_MT_inr, draw_object_menu
from .sidebar import INR_UL_shapes, VIEW3D_PT_inr_backend, VIEW3D_PT_inr_field, VIEW3D_PT_inr_fit, VIEW3D_PT_inr_job

classes = (VIEW3D_MT_inr, INR_UL_shapes, VIEW3D_PT_inr_job, VIEW3D_PT_inr_fit, VIEW3D_PT_inr_field, VIEW3D_PT_inr_backend)
