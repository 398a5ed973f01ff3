"""Cameras, datasets (transforms.json), rays, samplers, volume rendering and image metrics."""
