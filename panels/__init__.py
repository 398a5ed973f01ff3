"""Sidebar panels and menus (drawing only): Job, Fit (sub-panels per kind of fit), Active Field (a sub-panel per
capability, shown for the fields it works on), Backend; the Object menu."""

from .displacement import VIEW3D_PT_inr_field_displacement, VIEW3D_PT_inr_fit_displacement
from .field import VIEW3D_PT_inr_field, VIEW3D_PT_inr_field_evaluation
from .fit import VIEW3D_PT_inr_fit
from .isopoints import VIEW3D_PT_inr_field_isopoints
from .job import VIEW3D_PT_inr_backend, VIEW3D_PT_inr_job
from .menu import VIEW3D_MT_inr, draw_object_menu as draw_object_menu
from .nerf import VIEW3D_PT_inr_field_nerf, VIEW3D_PT_inr_fit_nerf
from .ranges import VIEW3D_PT_inr_field_ranges
from .shape_space import (
    INR_UL_shapes,
    VIEW3D_PT_inr_field_interpolate,
    VIEW3D_PT_inr_field_reconstruct,
    VIEW3D_PT_inr_field_shapes,
    VIEW3D_PT_inr_fit_shape_space,
)
from .skeleton import VIEW3D_PT_inr_field_skeleton

# The sidebar's order: panels, then each parent's sub-panels, in this order.
classes = (
    VIEW3D_MT_inr,
    INR_UL_shapes,
    VIEW3D_PT_inr_job,
    VIEW3D_PT_inr_fit,
    VIEW3D_PT_inr_fit_displacement,
    VIEW3D_PT_inr_fit_shape_space,
    VIEW3D_PT_inr_fit_nerf,
    VIEW3D_PT_inr_field,
    VIEW3D_PT_inr_field_displacement,
    VIEW3D_PT_inr_field_shapes,
    VIEW3D_PT_inr_field_nerf,
    VIEW3D_PT_inr_field_evaluation,
    VIEW3D_PT_inr_field_skeleton,
    VIEW3D_PT_inr_field_isopoints,
    VIEW3D_PT_inr_field_ranges,
    VIEW3D_PT_inr_field_interpolate,
    VIEW3D_PT_inr_field_reconstruct,
    VIEW3D_PT_inr_backend,
)
