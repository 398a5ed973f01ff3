"""Analytic scenes for radiance-field tests: exact images of a two-coloured sphere from cameras around it."""

from __future__ import annotations

import json
import os

import numpy as np

RADIUS = 0.5
TOP, BOTTOM = np.array([0.9, 0.15, 0.1]), np.array([0.1, 0.2, 0.85])  # z > 0 red, z < 0 blue
ORIGIN, Z_UP = np.zeros(3), np.array([0.0, 0.0, 1.0])


def look_at(eye: np.ndarray, target: np.ndarray = ORIGIN, up: np.ndarray = Z_UP) -> np.ndarray:
    """Camera-to-world matrix (OpenGL: the camera looks down its -Z) at ``eye`` looking at ``target``."""
    back = eye - target
    back = back / np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-6:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, np.cross(back, right), back, eye
    return c2w


def sphere_cameras(count: int, distance: float = 2.0, seed: int = 0) -> np.ndarray:
    """``count`` cameras spread on a sphere (Fibonacci lattice) looking at the origin."""
    k = np.arange(count) + 0.5
    z = 1 - 2 * k / count
    phi = k * np.pi * (3 - np.sqrt(5)) + seed
    eyes = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), 0.9 * z], axis=1)
    eyes = eyes / np.linalg.norm(eyes, axis=1, keepdims=True) * distance
    return np.stack([look_at(e) for e in eyes])


def render_sphere(c2w: np.ndarray, focal: float, size: int, background=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Exact RGB (size, size, 3) and alpha of the sphere (flat colours, pixel centres, antialiased 4x4)."""
    sub = 4
    offsets = (np.arange(sub) + 0.5) / sub
    u = (np.arange(size)[:, None] + offsets[None, :]).ravel()
    uu, vv = np.meshgrid(u, u)  # uu across columns, vv down rows
    d = np.stack([(uu - size / 2) / focal, -(vv - size / 2) / focal, -np.ones_like(uu)], axis=-1) @ c2w[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = c2w[:3, 3]
    b = d @ o
    disc = b**2 - (o @ o - RADIUS**2)
    hit = disc > 0
    t = -b - np.sqrt(np.where(hit, disc, 0.0))
    z = o[2] + t * d[..., 2]
    colour = np.where((z > 0)[..., None], TOP, BOTTOM)
    rgb = np.where(hit[..., None], colour, np.asarray(background))
    rgb = rgb.reshape(size, sub, size, sub, 3).mean(axis=(1, 3))
    alpha = hit.astype(np.float64).reshape(size, sub, size, sub).mean(axis=(1, 3))
    return rgb.astype(np.float32), alpha.astype(np.float32)


def write_sphere_dataset(folder: str, count: int = 16, size: int = 32, focal: float = 40.0, rgba: bool = True) -> np.ndarray:
    """A NeRF-synthetic folder (transforms.json, RGBA PNGs named without extension in file_path); returns the cameras."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    cameras = sphere_cameras(count)
    frames = []
    for k, c2w in enumerate(cameras):
        rgb, alpha = render_sphere(c2w, focal, size, background=(0.0, 0.0, 0.0))
        # straight alpha: the colour where there is coverage, unpremultiplied
        straight = np.where(alpha[..., None] > 0, rgb / np.maximum(alpha[..., None], 1e-6), 0.0)
        pixels = np.concatenate([straight, alpha[..., None]], axis=-1) if rgba else render_sphere(c2w, focal, size)[0]
        Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)).save(os.path.join(folder, f"r_{k}.png"))
        frames.append({"file_path": f"./r_{k}", "transform_matrix": c2w.tolist()})
    meta = {"camera_angle_x": float(2 * np.arctan(size / 2 / focal)), "aabb": [[-1, -1, -1], [1, 1, 1]], "frames": frames}
    with open(os.path.join(folder, "transforms.json"), "w") as fh:
        json.dump(meta, fh)
    return cameras
