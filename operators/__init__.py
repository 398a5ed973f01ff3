"""Blender operators (thin: read the scene, submit a job, write the result back)."""

from .backend import INR_OT_cancel_job, INR_OT_check_backend, INR_OT_setup_backend
from .camera_rig import INR_OT_create_camera_rig
from .check_intersection import INR_OT_check_intersection
from .closest_points import INR_OT_closest_points
from .evaluate_field import INR_OT_evaluate_field
from .extract_mesh import INR_OT_extract_mesh
from .extract_skeleton import INR_OT_extract_skeleton
from .fit_displacement import INR_OT_fit_displacement
from .fit_nerf import INR_OT_fit_nerf
from .fit_sdf import INR_OT_fit_sdf
from .fit_shape_space import INR_OT_fit_shape_space
from .interpolate_shapes import INR_OT_interpolate_shapes
from .raycast_view import INR_OT_raycast_view
from .reconstruct_shape import INR_OT_reconstruct_shape
from .render_nerf_view import INR_OT_render_nerf_view
from .render_views import INR_OT_render_training_views
from .sample_isopoints import INR_OT_sample_isopoints
from .transfer_detail import INR_OT_transfer_detail

classes = (
    INR_OT_check_backend,
    INR_OT_setup_backend,
    INR_OT_cancel_job,
    INR_OT_fit_sdf,
    INR_OT_extract_mesh,
    INR_OT_extract_skeleton,
    INR_OT_sample_isopoints,
    INR_OT_fit_displacement,
    INR_OT_transfer_detail,
    INR_OT_evaluate_field,
    INR_OT_create_camera_rig,
    INR_OT_render_training_views,
    INR_OT_fit_nerf,
    INR_OT_render_nerf_view,
    INR_OT_raycast_view,
    INR_OT_closest_points,
    INR_OT_check_intersection,
    INR_OT_fit_shape_space,
    INR_OT_reconstruct_shape,
    INR_OT_interpolate_shapes,
)
