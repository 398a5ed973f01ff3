"""Geometry: surface sampling, mesh extraction, and comparison metrics."""
