"""PyTorch backend of the INR Blender extension (kept import-light: no torch here)."""

__version__ = "0.1.0"
