"""Randomly initialised models with the real architectures and real tokenizers.

They load through exactly the code paths of the real models (BGE-small as a sentence-transformers
folder, CLIP ViT-B/32 as a transformers folder) but their vectors mean nothing: config.json says
``"mmretrieve_random_weights": true`` and encoders report ``info["random"]``. Use them for tests,
wiring and speed measurements where the real weights cannot be downloaded.

Example:
    python tools/random_models.py --out /tmp/models --tiny
    # -> /tmp/models/bge-small-random and /tmp/models/clip-vit-b-32-random
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BGE_TOKENIZER = REPO.parent / "shared" / "models" / "bge-small-en-v1.5-tokenizer"
DEFAULT_CLIP_BPE = (
    REPO.parent / "shared" / "models" / "clip-vit-b-32-tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
)
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
RANDOM_MARK = "mmretrieve_random_weights"


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _mark_random(out: Path) -> None:
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config[RANDOM_MARK] = True
    _write_json(out / "config.json", config)


def _layers(hidden: int, layers: int, heads: int, intermediate: int) -> dict[str, int]:
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
    }


def build_text_model(
    out_dir: str | Path, *, tokenizer_dir: str | Path, tiny: bool = False, seed: int = 0
) -> Path:
    """Write a random BertModel (bge-small shape, or tiny) as a sentence-transformers folder."""
    import torch
    from transformers import BertConfig, BertModel

    out, tok = Path(out_dir), Path(tokenizer_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = _layers(32, 2, 2, 64) if tiny else _layers(384, 12, 12, 1536)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, pad_token_id=0, **size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config).eval()
    model.save_pretrained(out)
    _mark_random(out)
    for name in TOKENIZER_FILES:
        if (tok / name).is_file():
            shutil.copyfile(tok / name, out / name)
    hidden = size["hidden_size"]
    modules = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    _write_json(
        out / "modules.json",
        [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
            for i, (path, kind) in enumerate(modules)
        ],
    )
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": True,
            "pooling_mode_mean_tokens": False,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": True})
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {"query": BGE_QUERY_INSTRUCTION, "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """OpenAI CLIP's reversible byte -> printable unicode character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def clip_vocab_and_merges(
    bpe_vocab: str | Path,
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The standard openai/CLIP construction of the 49,408-token vocabulary and its merges."""
    with gzip.open(bpe_vocab) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    pairs = [(a, b) for a, b in (m.split() for m in merges)]
    symbols = list(_bytes_to_unicode().values())
    symbols = symbols + [s + "</w>" for s in symbols]
    symbols += ["".join(p) for p in pairs]
    symbols += ["<|startoftext|>", "<|endoftext|>"]
    return {s: i for i, s in enumerate(symbols)}, pairs


def build_clip_tokenizer(out_dir: str | Path, *, bpe_vocab: str | Path) -> Path:
    """Write vocab.json, merges.txt and the transformers tokenizer files into ``out_dir``."""
    from transformers import CLIPTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab_and_merges(bpe_vocab)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (out / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizerFast(vocab=vocab, merges=merges, model_max_length=77)
    tokenizer.save_pretrained(str(out))
    return out


def build_clip_model(
    out_dir: str | Path, *, bpe_vocab: str | Path, tiny: bool = False, seed: int = 0
) -> Path:
    """Write a random CLIPModel (ViT-B/32 shape, or tiny) with the real CLIP tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tiny:
        vision, text, projection = _layers(32, 2, 2, 64), _layers(32, 2, 2, 64), 32
    else:  # ViT-B/32
        vision, text, projection = _layers(768, 12, 12, 3072), _layers(512, 12, 8, 2048), 512
    config = CLIPConfig(
        text_config={
            **text,
            "vocab_size": 49408,
            "max_position_embeddings": 77,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
            "projection_dim": projection,
        },
        vision_config={**vision, "patch_size": 32, "image_size": 224, "projection_dim": projection},
        projection_dim=projection,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    model.save_pretrained(out)
    _mark_random(out)
    build_clip_tokenizer(out, bpe_vocab=bpe_vocab)
    _write_json(
        out / "preprocessor_config.json",
        {
            "crop_size": {"height": 224, "width": 224},
            "do_center_crop": True,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_processor_type": "CLIPImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "resample": 3,
            "rescale_factor": 1 / 255,
            "size": {"shortest_edge": 224},
        },
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write randomly initialised BGE-small and CLIP ViT-B/32 model folders "
        "(real architectures and tokenizers, random weights).",
        epilog="example: python tools/random_models.py --out /tmp/models --tiny",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write the models in")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (fast tests)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--bge-tokenizer",
        type=Path,
        default=DEFAULT_BGE_TOKENIZER,
        help=f"folder with the BGE tokenizer files (default {DEFAULT_BGE_TOKENIZER})",
    )
    parser.add_argument(
        "--clip-bpe",
        type=Path,
        default=DEFAULT_CLIP_BPE,
        help=f"OpenAI CLIP bpe_simple_vocab_16e6.txt.gz (default {DEFAULT_CLIP_BPE})",
    )
    parser.add_argument(
        "--only", choices=["text", "clip"], default=None, help="write just one of the two models"
    )
    args = parser.parse_args(argv)
    if args.only in (None, "text"):
        text = build_text_model(
            args.out / "bge-small-random",
            tokenizer_dir=args.bge_tokenizer,
            tiny=args.tiny,
            seed=args.seed,
        )
        print(f"wrote {text}")
    if args.only in (None, "clip"):
        clip = build_clip_model(
            args.out / "clip-vit-b-32-random",
            bpe_vocab=args.clip_bpe,
            tiny=args.tiny,
            seed=args.seed,
        )
        print(f"wrote {clip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
