"""PyTorch CLIP encoder: images and short texts in one space (transformers CLIPModel).

Image preprocessing is our own numpy/PIL code (``preprocess.py``, no torch), shared with the
ONNX runtime; it is re-exported here for callers that import it from this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmretrieve.encoders.preprocess import (
    MAX_ASPECT,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ClipPreprocess,
)
from mmretrieve.encoders.resolve import is_random_model, resolve_model
from mmretrieve.encoders.runtime import DTYPE_NAMES
from mmretrieve.encoders.torch_utils import (
    ModelWeights,
    clip_features,
    quiet_loading,
    resolve_precision,
)
from mmretrieve.errors import ModelLoadError, require
from mmretrieve.types import valid_unicode

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "MAX_ASPECT",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "ClipPreprocess",
    "TorchClipEncoder",
]


class TorchClipEncoder:
    """Encodes images and texts into CLIP's shared space; float32, L2-normalised.
    ``workload`` ("index" or "query"): which weights bf16 keeps on CPU (``ModelWeights``)."""

    runtime = "torch"

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str | None = None,
        batch_size: int = 32,
        precision: str | None = None,
        workload: str = "query",
    ) -> None:
        torch = require("torch", "torch")
        transformers = require("transformers", "torch")

        resolved = resolve_model(name_or_path, "image")
        path = resolved.path
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.precision = resolve_precision(precision, self.device)
        try:
            with quiet_loading():
                self._tokenizer = transformers.CLIPTokenizerFast.from_pretrained(str(path))
                model = transformers.CLIPModel.from_pretrained(str(path), dtype=torch.float32)
        except Exception as exc:  # many failure types: missing files, bad weights, bad config
            raise ModelLoadError(
                f"cannot load CLIP model '{name_or_path}' from {path}: {exc}"
            ) from exc
        self._weights = ModelWeights(
            model.to(self.device).eval(), self.device, self.precision, workload
        )
        self.preprocess = ClipPreprocess.from_folder(path)
        self.context_length = int(model.config.text_config.max_position_embeddings)
        self.image_size = int(model.config.vision_config.image_size)
        self.batch_size = batch_size
        self.name = resolved.name
        self.dim = int(model.config.projection_dim)
        self.info: dict[str, object] = {
            "name": resolved.name,
            "path": str(path),
            "revision": resolved.revision,
            "dim": self.dim,
            "runtime": self.runtime,
            "device": self.device,
            "dtype": DTYPE_NAMES[self.precision],
            "image_size": self.image_size,
            "context_length": self.context_length,
            "random": is_random_model(path),
        }

    def __repr__(self) -> str:
        return f"TorchClipEncoder({self.name!r}, dim={self.dim}, device={self.device!r})"

    def encode_images(self, images: Sequence[PILImage]) -> np.ndarray:
        """Embed PIL images (any size or mode; converted to RGB)."""
        import torch

        out = np.empty((len(images), self.dim), dtype=np.float32)
        size = max(1, int(self.batch_size))
        for start in range(0, len(images), size):
            pixels = np.stack([self.preprocess(im) for im in images[start : start + size]])
            model, lowp = self._weights.for_rows(len(pixels))
            pixel_values = torch.from_numpy(pixels).to(self.device, model.dtype)
            with torch.inference_mode(), lowp:
                feats = clip_features(model.get_image_features(pixel_values=pixel_values))
                out[start : start + len(pixels)] = _normalized(feats)
        return out

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed short texts; anything past the context length (77 tokens) is dropped. Lone
        surrogates become U+FFFD."""
        import torch

        texts = [valid_unicode(t) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        size = max(1, int(self.batch_size))
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            batch = self._tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.context_length,
                return_tensors="pt",
            )
            model, lowp = self._weights.for_rows(len(idx))
            with torch.inference_mode(), lowp:
                feats = clip_features(
                    model.get_text_features(
                        input_ids=batch["input_ids"].to(self.device),
                        attention_mask=batch["attention_mask"].to(self.device),
                    )
                )
                out[idx] = _normalized(feats)
        return out


def _normalized(feats: Any) -> np.ndarray:
    import torch

    feats = torch.nn.functional.normalize(feats.float(), p=2, dim=-1)
    return feats.cpu().numpy().astype(np.float32, copy=False)
