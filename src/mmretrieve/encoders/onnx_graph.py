"""Encoders over exported ONNX files, whichever engine runs them: file lookup, tokenization (the
``tokenizers`` library and ``tokenizer.json``), feeds, numpy pooling and normalising.

A backend subclasses ``OnnxGraphTextEncoder`` / ``OnnxGraphClipEncoder`` and says how a file is
opened (``open_session``: an object with ONNX Runtime's ``get_inputs()`` and ``run(None, feeds)``)
and which files' precision it reads (``file_precision``): ONNX Runtime in ``onnx.py``, OpenVINO in
``openvino.py``. No torch, and no engine, is imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmretrieve.encoders.base import TextEncoderMethods, l2_normalize
from mmretrieve.encoders.model_config import (
    known_text_model,
    read_config,
    read_json,
    read_pooling,
    read_query_instruction,
    st_max_seq_length,
)
from mmretrieve.encoders.preprocess import ClipPreprocess
from mmretrieve.encoders.resolve import ResolvedModel, is_random_model, resolve_model
from mmretrieve.encoders.runtime import DTYPE_NAMES, onnx_file, onnx_folder
from mmretrieve.errors import ModelLoadError, ModelNotFoundError, UsageError
from mmretrieve.types import valid_unicode

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


def onnx_file_precision(precision: str | None) -> str:
    """The precision of the ONNX files to read: fp32 or int8 ("auto" = fp32)."""
    wanted = (precision or "fp32").lower()
    if wanted == "auto":
        return "fp32"  # int8 only when asked for (encoders/runtime.py says why)
    if wanted not in ("fp32", "int8"):
        raise UsageError(
            f"precision {wanted!r} is not available with the onnx runtime (fp32, int8)"
        )
    return wanted


def _locate(resolved: ResolvedModel, kind: str, precision: str, flag: str) -> Path:
    folder = onnx_folder(resolved.path, resolved.name, resolved.revision, kind, precision)
    if folder is None:
        what = "int8 " if precision == "int8" else ""
        raise ModelNotFoundError(
            f"no {what}ONNX files for {kind} model '{resolved.name}' (looked in {resolved.path} "
            f"and the export cache). On a machine with torch run `mmretrieve models export "
            f"{resolved.name}` (add --out DIR to make a folder to copy here and pass with {flag} "
            "DIR), or use --runtime torch."
        )
    return folder


def _special(folder: Path, key: str) -> str | None:
    """A special token's text from tokenizer_config.json / special_tokens_map.json."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        data = read_json(folder / name)
        if isinstance(data, dict) and data.get(key):
            value = data[key]
            return str(value.get("content") if isinstance(value, dict) else value)
    return None


def _tokenizer(folder: Path, max_length: int, pad_default: str) -> Any:
    """tokenizer.json with our truncation and pad-to-longest, as the transformers call does."""
    from tokenizers import Tokenizer

    file = folder / "tokenizer.json"
    if not file.is_file():
        raise ModelLoadError(f"{folder} has no tokenizer.json (re-export the model)")
    tokenizer = Tokenizer.from_file(str(file))
    tokenizer.enable_truncation(max_length=max_length)
    pad = _special(folder, "pad_token") or pad_default
    pad_id = tokenizer.token_to_id(pad)
    tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad)
    return tokenizer


def _feeds(session: Any, encodings: list[Any]) -> dict[str, np.ndarray]:
    arrays = {
        "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
    }
    names = [i.name for i in session.get_inputs()]
    if "token_type_ids" in names:
        arrays["token_type_ids"] = np.zeros_like(arrays["input_ids"])
    return {n: arrays[n] for n in names}


def _open_model(
    name_or_path: str, kind: str, device: str | None, precision: str | None
) -> tuple[str, ResolvedModel, Path, dict[str, Any]]:
    """The precision, the model (``kind`` "text" or "image"), its folder of ONNX files and its
    config.json."""
    if device not in (None, "cpu"):
        raise UsageError(f"the onnx runtime runs on CPU only, not {device!r}")
    precision = onnx_file_precision(precision)  # the files' precision
    resolved = resolve_model(name_or_path, kind)
    folder = _locate(resolved, kind, precision, f"--{kind}-model")
    return precision, resolved, folder, read_config(resolved.path)


def _order(texts: Sequence[str]) -> list[int]:
    """Longest first, so each batch holds texts of similar length (less padding)."""
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))


def _text_max_length(
    resolved: ResolvedModel, folder: Path, config: dict[str, Any], max_length: int | None
) -> int:
    """The asked-for limit, else sentence-transformers', else the tokenizer's (<= 512); never
    past the model's positions."""
    positions = int(config.get("max_position_embeddings", 512) or 512)
    if max_length is None:
        st_length = st_max_seq_length(resolved.path)
        tok_cfg = read_json(folder / "tokenizer_config.json")
        if st_length is not None:
            max_length = st_length
        elif isinstance(tok_cfg, dict) and int(tok_cfg.get("model_max_length", 0) or 0) > 0:
            max_length = min(int(tok_cfg["model_max_length"]), positions, 512)
        else:
            max_length = min(positions, 512)
    return max(2, min(int(max_length), positions))


class _Engine:
    """What a backend says: its runtime name, the precision of the files it reads and how it
    opens one (a session with ``get_inputs()`` and ``run(None, feeds)``)."""

    runtime: str
    name: str
    dim: int
    info: dict[str, object]

    def file_precision(self, precision: str | None) -> str:
        raise NotImplementedError

    def open_session(self, path: Path, threads: int | None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.dim}, dtype={self.info['dtype']!r})"


class OnnxGraphTextEncoder(_Engine, TextEncoderMethods):
    """A BGE / sentence-transformers text model from its ONNX file; float32, L2-normalised."""

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str | None = None,
        query_instruction: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        precision: str | None = None,
        threads: int | None = None,
        workload: str = "query",  # unused: the engines run batches and queries alike
    ) -> None:
        self.precision, resolved, folder, config = _open_model(
            name_or_path, "text", device, self.file_precision(precision)
        )
        known = known_text_model(resolved, config)
        self.pooling = read_pooling(resolved.path, known)
        self.query_instruction = read_query_instruction(resolved.path, query_instruction, known)
        self.max_length = _text_max_length(resolved, folder, config, max_length)
        self._tokenizer = _tokenizer(folder, self.max_length, "[PAD]")
        self._counter = _tokenizer(folder, self.max_length, "[PAD]")
        self._counter.no_truncation()
        self._counter.no_padding()
        path = onnx_file(folder, "text", self.precision)
        assert path is not None
        self._session = self.open_session(path, threads)
        self.batch_size = batch_size
        self.device = "cpu"
        self.name = resolved.name
        self.dim = int(config.get("hidden_size", 0)) * len(self.pooling)
        self.info: dict[str, object] = {
            "name": resolved.name,
            "path": str(path),
            "revision": resolved.revision,
            "dim": self.dim,
            "pooling": "+".join(self.pooling),
            "query_instruction": self.query_instruction,
            "max_length": self.max_length,
            "runtime": self.runtime,
            "device": "cpu",
            "dtype": DTYPE_NAMES[self.precision],
            "random": is_random_model(resolved.path),
        }

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order, size = _order(texts), max(1, int(self.batch_size))
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in idx])
            feeds = _feeds(self._session, encodings)
            hidden = self._session.run(None, feeds)[0].astype(np.float32, copy=False)
            out[idx] = l2_normalize(_pool(hidden, feeds["attention_mask"], self.pooling))
        return out


def _pool(hidden: np.ndarray, mask: np.ndarray, modes: list[str]) -> np.ndarray:
    """sentence-transformers pooling over ``hidden`` [n, t, d] with ``mask`` [n, t], in numpy."""
    m = mask[..., None].astype(np.float32)
    lengths = np.maximum(m.sum(axis=1), 1e-9)
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "mean":
            parts.append((hidden * m).sum(axis=1) / lengths)
        elif mode == "mean_sqrt_len":
            parts.append((hidden * m).sum(axis=1) / np.sqrt(lengths))
        elif mode == "max":
            parts.append(np.where(m > 0, hidden, np.finfo(np.float32).min).max(axis=1))
        elif mode == "lasttoken":
            last = mask.sum(axis=1).astype(np.int64) - 1
            parts.append(hidden[np.arange(hidden.shape[0]), last])
        else:  # pragma: no cover - read_pooling only yields the modes above
            raise ModelLoadError(f"unknown pooling mode {mode!r}")
    return np.concatenate(parts, axis=-1)


class OnnxGraphClipEncoder(_Engine):
    """CLIP's image and text towers from their ONNX files; float32, L2-normalised."""

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str | None = None,
        batch_size: int = 32,
        precision: str | None = None,
        threads: int | None = None,
        workload: str = "query",  # unused: the engines run batches and queries alike
    ) -> None:
        self.precision, resolved, folder, config = _open_model(
            name_or_path, "image", device, self.file_precision(precision)
        )
        text_cfg, vision_cfg = config.get("text_config") or {}, config.get("vision_config") or {}
        self.context_length = int(text_cfg.get("max_position_embeddings", 77))
        self.image_size = int(vision_cfg.get("image_size", 224))
        self.dim = int(config.get("projection_dim", 512))
        self.preprocess = ClipPreprocess.from_folder(resolved.path)
        self._tokenizer = _tokenizer(folder, self.context_length, "<|endoftext|>")
        vision = onnx_file(folder, "clip_vision", self.precision)
        text = onnx_file(folder, "clip_text", self.precision)
        assert vision is not None and text is not None
        self._vision = self.open_session(vision, threads)
        self._text = self.open_session(text, threads)
        self.batch_size = batch_size
        self.device = "cpu"
        self.name = resolved.name
        self.info: dict[str, object] = {
            "name": resolved.name,
            "path": str(vision.parent),
            "revision": resolved.revision,
            "dim": self.dim,
            "runtime": self.runtime,
            "device": "cpu",
            "dtype": DTYPE_NAMES[self.precision],
            "image_size": self.image_size,
            "context_length": self.context_length,
            "random": is_random_model(resolved.path),
        }

    def encode_images(self, images: Sequence[PILImage]) -> np.ndarray:
        """Embed PIL images (any size or mode; converted to RGB)."""
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        size = max(1, int(self.batch_size))
        name = self._vision.get_inputs()[0].name
        for start in range(0, len(images), size):
            pixels = np.stack([self.preprocess(im) for im in images[start : start + size]])
            feats = self._vision.run(None, {name: pixels})[0]
            out[start : start + len(pixels)] = l2_normalize(feats)
        return out

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed short texts; anything past the context length (77 tokens) is dropped. Lone
        surrogates become U+FFFD."""
        texts = [valid_unicode(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order, size = _order(texts), max(1, int(self.batch_size))
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in idx])
            feats = self._text.run(None, _feeds(self._text, encodings))[0]
            out[idx] = l2_normalize(feats)
        return out
