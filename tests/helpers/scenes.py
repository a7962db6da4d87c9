"""Generated pictures with the structure of photos (for perceptual hashing and near-copies)."""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> PILImage.Image:
    """A picture with the structure of a photo: a gradient sky and a few filled shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0, 1, h)[:, None, None]
    top, bottom = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    sky = (top * (1 - ramp) + bottom * ramp).repeat(w, axis=1).astype(np.uint8)
    img = PILImage.fromarray(sky)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 2)), y0 + int(rng.integers(30, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return img
