"""Posed images for radiance fields, from a transforms.json folder (see :mod:`.transforms`) or from arrays.

Images are read with Pillow (8- or 16-bit PNG, JPEG), composited over a background colour when they
have alpha (straight alpha, as NeRF-synthetic's RGBA PNGs), and optionally downsampled by an integer
factor (area average; the intrinsics are divided by it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import JobError
from .transforms import Resolve, camera_matrix, frame_intrinsics, read_transforms, scene_box


@dataclass
class Views:
    """Posed images of one size: ``images`` (N, H, W, 3) float32 in [0, 1], composited over ``background``; ``alpha``
    (N, H, W) float32, their coverage, when any image had an alpha channel (1 in the others), else None."""

    images: np.ndarray
    c2w: np.ndarray  # (N, 4, 4) float64
    intrinsics: np.ndarray  # (N, 4) float64: fx, fy, cx, cy in pixels
    aabb: np.ndarray  # (2, 3): the scene box
    names: list[str]
    alpha: np.ndarray | None = None

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    def subset(self, index: Sequence[int]) -> Views:
        index = list(index)
        alpha = None if self.alpha is None else self.alpha[index]
        return Views(self.images[index], self.c2w[index], self.intrinsics[index], self.aabb, [self.names[i] for i in index], alpha)


def holdout_split(count: int, every: int) -> tuple[list[int], list[int]]:
    """(training, held-out) view indices: every ``every``-th view (0, every, 2*every, ...) is held out; 0 holds none out."""
    if every <= 0 or count < 2:
        return list(range(count)), []
    test = list(range(0, count, every))
    return [i for i in range(count) if i % every], test


def read_image(path: str) -> np.ndarray:
    """An image file as float32 (H, W, 3 or 4) in [0, 1] (8- or 16-bit), or JobError."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("I;16", "I;16B", "I"):
                data = np.asarray(im, dtype=np.float32) / 65535.0
                data = np.repeat(data[..., None], 3, axis=-1)
            else:
                converted = im.convert("RGBA" if ("A" in mode or "transparency" in im.info) else "RGB")
                data = np.asarray(converted, dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise JobError(f"cannot read image {path}: {exc}") from None
    return data


def composite(image: np.ndarray, background: Sequence[float]) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB over ``background`` (straight alpha), and the alpha channel if there was one."""
    if image.shape[-1] == 3:
        return image.astype(np.float32), None
    rgb, alpha = image[..., :3], image[..., 3:4]
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    return (rgb * alpha + bg * (1.0 - alpha)).astype(np.float32), alpha[..., 0].astype(np.float32)


def recomposite(colours: Any, alpha: Any, old: Any, new: Any) -> Any:
    """Colours composited over ``old`` (straight alpha, coverage ``alpha``) composited over ``new`` instead: numpy
    arrays or torch tensors, (..., 3) colours and backgrounds, (...) coverage."""
    return colours + (new - old) * (1.0 - alpha)[..., None]


def _coverage(alphas: list[np.ndarray | None], shape: tuple[int, ...], downscale: int) -> np.ndarray | None:
    """(N, H, W) coverage of images whose alpha channels are ``alphas`` (None: opaque), or None if all are opaque."""
    if all(a is None for a in alphas):
        return None
    return np.stack([downsample((np.ones(shape, np.float32) if a is None else a)[..., None], downscale)[..., 0] for a in alphas])


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Area (box) downsampling by an integer factor; the image is cropped to a multiple of it."""
    if factor == 1:
        return image
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    if h == 0 or w == 0:
        raise JobError(f"downscale {factor} leaves an empty image of {image.shape[1]}x{image.shape[0]}")
    c = image.shape[2]
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def load_transforms(path: str, background: Sequence[float] = (1.0, 1.0, 1.0), downscale: int = 1, resolve: Resolve | None = None) -> Views:
    """Read a transforms.json file (or the folder holding one) and its images; see :mod:`.transforms` (``resolve``:
    a remote worker's check of each path read)."""
    if downscale < 1:
        raise JobError(f"downscale must be at least 1, got {downscale}")
    scene = read_transforms(path, resolve)
    images: list[np.ndarray] = []
    intrinsics: list[np.ndarray] = []
    names: list[str] = []
    alphas: list[np.ndarray | None] = []
    size = (0, 0)
    for frame in scene.frames:
        rgb, alpha = composite(read_image(frame.image_path), background)
        h, w = rgb.shape[:2]
        name = os.path.basename(frame.image_path)
        if names and size != (w, h):
            raise JobError(f"images of different sizes: {name} is {w}x{h}, {names[0]} is {size[0]}x{size[1]}")
        size = (w, h)
        intrinsics.append(frame_intrinsics(frame.camera, w, h, frame.where) / downscale)
        images.append(downsample(rgb, downscale))
        alphas.append(alpha)
        names.append(name)
    c2w = np.stack([frame.c2w for frame in scene.frames])
    alpha = _coverage(alphas, (size[1], size[0]), downscale)
    return Views(np.stack(images).astype(np.float32), c2w, np.stack(intrinsics), scene.aabb, names, alpha)


def views_from_arrays(
    images: np.ndarray,
    c2w: np.ndarray,
    intrinsics: np.ndarray,
    aabb: Any = None,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    downscale: int = 1,
) -> Views:
    """Views from arrays sent with a job: uint8 or float ``images`` (N, H, W, 3|4), ``c2w`` (N, 4, 4), ``intrinsics`` (N, 4)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise JobError(f"images must be (N, H, W, 3 or 4), got shape {images.shape}")
    if len(images) == 0:
        raise JobError("zero views were given")
    n = len(images)
    c2w, intrinsics = np.asarray(c2w, dtype=np.float64), np.asarray(intrinsics, dtype=np.float64)
    if c2w.shape != (n, 4, 4) or intrinsics.shape != (n, 4):
        raise JobError(f"{n} images need c2w of shape ({n}, 4, 4) and intrinsics ({n}, 4); got {c2w.shape} and {intrinsics.shape}")
    if not np.isfinite(intrinsics).all() or (intrinsics[:, :2] <= 0).any():
        raise JobError("intrinsics must be finite with positive focal lengths")
    data = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    rgb = np.stack([downsample(composite(im, background)[0], downscale) for im in data])
    alpha = None if data.shape[-1] == 3 else np.stack([downsample(im[..., 3:4], downscale)[..., 0] for im in data])
    box = scene_box({"aabb": aabb} if aabb is not None else {}, "views")
    cameras = np.stack([camera_matrix(m, f"view {k}") for k, m in enumerate(c2w)])
    return Views(rgb, cameras, intrinsics / downscale, box, [f"view {k}" for k in range(n)], alpha)
