"""`mmretrieve models export`: write ONNX files (fp32 and int8) from a model's PyTorch weights.

The output is a self-contained model folder: the source's configs and tokenizer files (plus a
``tokenizer.json`` when the source had none) and ``onnx/`` with the graphs, named like the
Hugging Face ONNX repositories (``onnx/model.onnx`` for text; ``onnx/vision_model.onnx`` and
``onnx/text_model.onnx`` for CLIP; ``*_int8.onnx`` quantized). Copy it to a machine without torch
and pass it as ``--text-model`` / ``--image-model``, or leave it in the export cache where
``--runtime onnx`` finds it for the same model name.

Needs the [torch] and [onnx] extras (and ``onnx``); the encoders that read the files do not.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmretrieve.encoders.resolve import WEIGHT_SUFFIXES, ResolvedModel, resolve_model
from mmretrieve.encoders.runtime import EXPORT_INFO, export_dir_for
from mmretrieve.encoders.torch_utils import clip_features, quiet_loading
from mmretrieve.errors import ModelLoadError, require

OPSET = 17
_SKIP_DIRS = {"onnx", "openvino", "coreml", ".cache", ".git"}
# Quantize the matrix products only: int8 convolutions (CLIP's patch embedding) are slow on CPU
# and cost accuracy for nothing. Per-channel weights, and the first matrix product of each MLP
# block (whose input carries the outlier features) kept in fp32: measured on all-MiniLM-L6-v2,
# this lifts the worst per-vector cosine against fp32 from 0.981 to 0.990 (docs/BENCHMARKS.md).
_INT8_OPS = ["MatMul", "Gemm", "Attention"]
_INT8_KEEP_FP32 = re.compile(r"(intermediate/dense|mlp/fc1)/")


def detect_kind(path: Path) -> str:
    """ "image" for a CLIP folder, else "text"."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path / 'config.json'}: {exc}") from exc
    return "image" if str(config.get("model_type", "")).lower() == "clip" else "text"


def _copy_configs(src: Path, out: Path) -> None:
    """Everything but weights and other runtimes' files (follows HF cache symlinks)."""
    for item in src.rglob("*"):
        rel = item.relative_to(src)
        if rel.parts[0] in _SKIP_DIRS or not item.is_file() or item.suffix in WEIGHT_SUFFIXES:
            continue
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item, target)


def export_model(
    name_or_path: str,
    out_dir: str | Path | None = None,
    *,
    kind: str | None = None,
    int8: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """Export ``name_or_path`` to ONNX in ``out_dir`` (default: the export cache, where
    ``--runtime onnx`` finds it for the same model name). Returns the folder written."""
    require("torch", "torch")
    require("transformers", "torch")
    require("onnx", "onnx-export")
    resolved = resolve_model(name_or_path, kind or "text")
    kind = kind or detect_kind(resolved.path)
    out = Path(out_dir) if out_dir is not None else export_dir_for(resolved.name, resolved.revision)
    if out.resolve() == resolved.path.resolve():
        raise ModelLoadError("export into a new folder, not into the model's own folder")
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    _copy_configs(resolved.path, out)
    if kind == "image":
        files = _export_clip(resolved, out, log)
    else:
        files = _export_text(resolved, out, log)
    if int8:
        files += [_quantize(f, log) for f in list(files)]
    _write_info(resolved, out, kind, files)
    return out


def _write_info(resolved: ResolvedModel, out: Path, kind: str, files: list[Path]) -> None:
    import onnx
    import torch
    import transformers

    info = {
        "source": {"name": resolved.name, "revision": resolved.revision},
        "kind": kind,
        "files": [f.relative_to(out).as_posix() for f in files],
        "opset": OPSET,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
        },
    }
    (out / EXPORT_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")


def _load(resolved: ResolvedModel, cls_name: str) -> Any:
    import torch
    import transformers

    cls = getattr(transformers, cls_name)
    try:
        with quiet_loading():
            # Eager attention traces to plain ONNX ops that ORT's fusions recognise.
            model = cls.from_pretrained(
                str(resolved.path), dtype=torch.float32, attn_implementation="eager"
            )
    except Exception as exc:  # missing files, bad weights, unsupported architecture
        raise ModelLoadError(f"cannot load '{resolved.name}' for export: {exc}") from exc
    return model.eval()


def _save_tokenizer_json(resolved: ResolvedModel, out: Path, cls_name: str) -> None:
    if (out / "tokenizer.json").is_file():
        return
    import transformers

    tokenizer = getattr(transformers, cls_name).from_pretrained(str(resolved.path))
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"'{resolved.name}' has no fast tokenizer to export")
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))


def _export(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    inputs: list[str],
    output: str,
    axes: dict[str, dict[int, str]],
) -> Path:
    import torch

    # The tracer warns about shape checks it records as constants; for these models they are
    # constant (parity tests compare the results), so the warnings would only alarm users.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def _export_text(resolved: ResolvedModel, out: Path, log: Callable[[str], None]) -> list[Path]:
    import torch

    _save_tokenizer_json(resolved, out, "AutoTokenizer")
    model = _load(resolved, "AutoModel")
    with_types = int(getattr(model.config, "type_vocab_size", 0) or 0) > 0

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, *rest: Any) -> Any:
            extra = {"token_type_ids": rest[0]} if rest else {}
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.long)
    args: tuple[Any, ...] = (ids, torch.ones_like(ids))
    names = ["input_ids", "attention_mask"]
    if with_types:
        args, names = (*args, torch.zeros_like(ids)), [*names, "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    log(f"exporting {resolved.name} text model")
    path = _export(Text(), args, out / "onnx" / "model.onnx", names, "last_hidden_state", axes)
    _optimize(path, "bert", model.config, log)
    return [path]


def _export_clip(resolved: ResolvedModel, out: Path, log: Callable[[str], None]) -> list[Path]:
    import torch

    _save_tokenizer_json(resolved, out, "CLIPTokenizerFast")
    model = _load(resolved, "CLIPModel")

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            return clip_features(self.model.get_image_features(pixel_values=pixel_values))

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return clip_features(
                self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
            )

    size = int(model.config.vision_config.image_size)
    pixels = torch.zeros((2, 3, size, size), dtype=torch.float32)
    log(f"exporting {resolved.name} image tower")
    vision = _export(
        Vision(),
        (pixels,),
        out / "onnx" / "vision_model.onnx",
        ["pixel_values"],
        "image_embeds",
        {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
    )
    _optimize(vision, "clip", model.config.vision_config, log)
    ids = torch.full((2, 8), int(model.config.text_config.eos_token_id or 2), dtype=torch.long)
    names = ["input_ids", "attention_mask"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["text_embeds"] = {0: "batch"}
    log(f"exporting {resolved.name} text tower")
    text = _export(
        Text(),
        (ids, torch.ones_like(ids)),
        out / "onnx" / "text_model.onnx",
        names,
        "text_embeds",
        axes,
    )
    _optimize(text, "clip", model.config.text_config, log)
    return [vision, text]


def _optimize(path: Path, model_type: str, config: Any, log: Callable[[str], None]) -> None:
    """Fuse attention, LayerNorm and GELU with ONNX Runtime's transformer optimizer, offline, so
    every load starts from the fused graph. Left unfused when the optimizer cannot."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(path),
            model_type=model_type,
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=1,
            only_onnxruntime=False,
        )
        optimized.save_model_to_file(str(path))
        log(f"  fused: {optimized.get_fused_operator_statistics()}")
    except Exception as exc:  # an optimizer that does not know the graph leaves it as it is
        log(f"  not fused ({type(exc).__name__}: {exc})")


def _quantize(path: Path, log: Callable[[str], None]) -> Path:
    """Dynamic int8 quantization of the weights of ``path`` -> ``*_int8.onnx`` beside it."""
    require("onnxruntime", "onnx")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = path.with_name(f"{path.stem}_int8.onnx")
    graph = onnx.load(str(path), load_external_data=False).graph
    keep = [n.name for n in graph.node if _INT8_KEEP_FP32.search(n.name)]
    log(f"quantizing {path.name} -> {target.name} ({len(keep)} matrix products kept in fp32)")
    # ORT's quantizer logs through the root logger; keep that off the user's terminal.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            str(path),
            str(target),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=_INT8_OPS,
            per_channel=True,
            nodes_to_exclude=keep,
            # Shape inference cannot type the outputs of ORT's fused ops; they are all float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(previous)
    return target
