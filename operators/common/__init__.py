"""What the operators share and no operator owns: bpy <-> numpy (bridge), running a job (job), fields and their
checkpoints (field, checkpoints), cameras, rigs and images, the fit settings (sdf_settings, displacement), shape
spaces, and the settings taken from the backend's declarations (defaults). No module here imports an operator."""
