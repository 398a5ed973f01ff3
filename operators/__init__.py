"""Blender operators (thin: read the scene, submit a job, write the result back)."""

from .backend import INR_OT_cancel_job, INR_OT_check_backend, INR_OT_setup_backend
from .evaluate_field import INR_OT_evaluate_field
from .extract_mesh import INR_OT_extract_mesh
from .fit_sdf import INR_OT_fit_sdf

classes = (INR_OT_check_backend, INR_OT_setup_backend, INR_OT_cancel_job, INR_OT_fit_sdf, INR_OT_extract_mesh, INR_OT_evaluate_field)
