#!/usr/bin/env bash
# GPU figures in one command, on a CUDA machine without network (bench/gpu.py; fp16).
#
# The CUDA machine's python must have torch (with CUDA) and transformers. Everything else the
# project needs comes from wheels downloaded beforehand into .wheels/ (ignored by git):
#
#   bench/gpu.sh fetch            # on a machine WITH network, in this repository (and, when
#                                 # ../shared is there, the tokenizers the random models need);
#                                 # then copy the repository with .wheels/ over
#   bench/gpu.sh [OUT.json]       # on the CUDA machine: installs from .wheels/, runs, writes OUT
#
# PYTHON (default python3) picks the interpreter; fetch downloads wheels for its version unless
# GPU_PY (e.g. 3.11) names the CUDA machine's. The run takes under 8 minutes (bench/gpu.py
# --budget 420 stops adding steps after 7) and writes one JSON file (default gpu-results.json).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=.wheels
# What the run needs besides torch and transformers: the project (its wheel) and its core deps.
NEEDS=(mmretrieve "safetensors>=0.4")

if [[ "${1:-}" == "fetch" ]]; then
  py=${GPU_PY:-$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
  mkdir -p "$WHEELS"
  "$PYTHON" -m pip wheel --no-deps --wheel-dir "$WHEELS" .
  "$PYTHON" -m pip download --dest "$WHEELS" --only-binary=:all: --python-version "$py" \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --implementation cp \
    $(sed -n '/^dependencies = \[/,/^\]/p' pyproject.toml | grep -o '"[^"]*"' | tr -d '"') \
    "safetensors>=0.4"
  # The tokenizers the random models are built with (a few MB), for a machine without ../shared.
  shared=${MMRETRIEVE_SHARED:-../shared}
  if [[ -d "$shared/models" ]]; then
    mkdir -p "$WHEELS/shared/models"
    cp -r "$shared/models/bge-small-en-v1.5-tokenizer" "$shared/models/clip-vit-b-32-tokenizer" \
      "$WHEELS/shared/models/"
  fi
  echo "wheels in $WHEELS: $(ls "$WHEELS" | wc -l) files"
  exit 0
fi

OUT=${1:-gpu-results.json}
"$PYTHON" -c 'import torch, transformers; assert torch.cuda.is_available(), "no CUDA device"' || {
  echo "bench/gpu.sh: needs a CUDA machine whose $PYTHON has torch (CUDA) and transformers" >&2
  exit 2
}
[[ -d "$WHEELS" ]] || { echo "bench/gpu.sh: no $WHEELS/; run 'bench/gpu.sh fetch' first" >&2; exit 2; }
[[ -d "${MMRETRIEVE_SHARED:-../shared}/models" ]] || export MMRETRIEVE_SHARED="$PWD/$WHEELS/shared"
VENV=.gpu-venv
# The machine's own torch and transformers stay visible; the rest is installed from the wheels.
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" "${NEEDS[@]}"
timeout 480 "$VENV/bin/python" bench/gpu.py --out "$OUT" "${@:2}"
echo "bench/gpu.sh: figures in $OUT"
