"""Settings, defaults and presets of every job and method: torch-free, so the Blender side imports them too."""
