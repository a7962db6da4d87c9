"""CLIP image preprocessing in numpy and PIL (no torch), shared by every runtime.

Equal to CLIPImageProcessor's defaults (and to the values in the folder's
preprocessor_config.json when present).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmretrieve.errors import ModelLoadError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT = 16  # long/short side ratio above which images are cropped before resizing


@dataclass(frozen=True, slots=True)
class ClipPreprocess:
    """Resize the shortest side, center-crop, scale to [0, 1], normalise; CHW float32."""

    shortest_edge: int = 224
    crop_height: int = 224
    crop_width: int = 224
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    resample: int = 3  # PIL.Image.Resampling.BICUBIC
    rescale_factor: float = 1 / 255
    do_center_crop: bool = True

    @classmethod
    def from_folder(cls, path: Path) -> ClipPreprocess:
        """Values from ``preprocessor_config.json`` when the folder has one, else defaults."""
        file = path / "preprocessor_config.json"
        if not file.is_file():
            return cls()
        try:
            cfg = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {file}: {exc}") from exc
        size = cfg.get("size", 224)
        if isinstance(size, dict):
            size = size.get("shortest_edge") or min(size.get("height", 224), size.get("width", 224))
        crop = cfg.get("crop_size", size)
        if isinstance(crop, dict):
            crop_h, crop_w = int(crop.get("height", size)), int(crop.get("width", size))
        else:
            crop_h = crop_w = int(crop)
        return cls(
            shortest_edge=int(size),
            crop_height=crop_h,
            crop_width=crop_w,
            mean=tuple(cfg.get("image_mean", OPENAI_CLIP_MEAN)),
            std=tuple(cfg.get("image_std", OPENAI_CLIP_STD)),
            resample=int(cfg.get("resample", 3)),
            rescale_factor=float(cfg.get("rescale_factor", 1 / 255)),
            do_center_crop=bool(cfg.get("do_center_crop", True)),
        )

    def __call__(self, image: PILImage) -> np.ndarray:
        """One PIL image -> float32 [3, crop_height, crop_width]."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        crop_w, crop_h = self.crop_width, self.crop_height
        extreme = new_long > MAX_ASPECT * new_short
        if extreme and self.do_center_crop and new_w >= crop_w and new_h >= crop_h:
            # Resize only the source region the crop keeps (PIL's ``box``) instead of building
            # a huge resized image (1 x 10,000 pixels would become 224 x 2,240,000). Nearly the
            # same pixels (PIL rounds a little differently), so only for extreme aspect ratios.
            left, top = (new_w - crop_w) // 2, (new_h - crop_h) // 2
            sx, sy = width / new_w, height / new_h
            box = (left * sx, top * sy, (left + crop_w) * sx, (top + crop_h) * sy)
            arr = np.asarray(image.resize((crop_w, crop_h), self.resample, box=box), np.uint8)
        else:
            if (new_w, new_h) != (width, height):
                image = image.resize((new_w, new_h), resample=self.resample)
            arr = np.asarray(image, dtype=np.uint8)  # H, W, C
            if self.do_center_crop:
                arr = _center_crop(arr, crop_h, crop_w)
        scaled = arr.astype(np.float32) * np.float32(self.rescale_factor)
        out = (scaled - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)


def _center_crop(arr: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    """transformers' center_crop on HWC: zero-pad when smaller, then take the middle."""
    h, w = arr.shape[:2]
    if h < crop_h or w < crop_w:
        new_h, new_w = max(h, crop_h), max(w, crop_w)
        padded = np.zeros((new_h, new_w, arr.shape[2]), dtype=arr.dtype)
        top_pad, left_pad = -(-(new_h - h) // 2), -(-(new_w - w) // 2)
        padded[top_pad : top_pad + h, left_pad : left_pad + w] = arr
        arr, h, w = padded, new_h, new_w
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return arr[top : top + crop_h, left : left + crop_w]
