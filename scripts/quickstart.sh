#!/usr/bin/env bash
# Index a corpus and run a few searches. Run through `make demo` (which sets up .venv first).
#
# Settings (environment variables):
#   MMRETRIEVE_CORPUS       folder or JSONL corpus to index (default: fetch a few Wikipedia pages)
#   MMRETRIEVE_TEXT_MODEL   text model name or folder   (default BAAI/bge-small-en-v1.5)
#   MMRETRIEVE_IMAGE_MODEL  CLIP model name or folder, "none" for text only, or "random" for a
#                           same-architecture CLIP with random weights (plumbing demos only)
#   MMRETRIEVE_INDEX        index directory             (default ./mmretrieve-index)
#   MMRETRIEVE_QUERY_IMAGE  an image to query with      (default: the first image in the index)
set -euo pipefail
cd "$(dirname "$0")/.."
MM=".venv/bin/mmretrieve"
export MMRETRIEVE_INDEX="${MMRETRIEVE_INDEX:-./mmretrieve-index}"

if [ "${MMRETRIEVE_IMAGE_MODEL:-}" = "random" ]; then
  out=".cache/random-models"
  if [ ! -d "$out/clip-vit-b-32-random" ]; then
    .venv/bin/python tools/random_models.py --out "$out" --only clip
  fi
  export MMRETRIEVE_IMAGE_MODEL="$out/clip-vit-b-32-random"
fi

corpus="${MMRETRIEVE_CORPUS:-}"
if [ -z "$corpus" ]; then
  if $MM --help | grep -q "^  wiki"; then
    corpus="./wiki"
    $MM models pull
    $MM wiki fetch "Batman" "Vincent van Gogh" "San Francisco" "iPhone" "Tesla Model S" "BTS" \
      --out "$corpus" --max-images 10
  else
    echo "Set MMRETRIEVE_CORPUS to a folder or JSONL corpus to index." >&2
    exit 2
  fi
fi

set +e
$MM index "$corpus"
status=$?
set -e
if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then exit "$status"; fi  # 3: some items skipped

$MM info
echo; echo '$ mmretrieve search "Who is Bruce Wayne?"'
$MM search "Who is Bruce Wayne?" -k 3

image="${MMRETRIEVE_QUERY_IMAGE:-}"
if [ -z "$image" ] && [ "${MMRETRIEVE_IMAGE_MODEL:-}" != "none" ]; then
  # an image of the best article for "Bat man" (any indexed image would do)
  image=$($MM search "Bat man" -k 3 --json | .venv/bin/python -c \
    'import json,sys; a=json.load(sys.stdin)["articles"]; i=[x for g in a for x in g["images"]]; print(i[0]["uri"] if i else "")')
fi
if [ -n "$image" ]; then
  echo; echo "\$ mmretrieve search \"Bat man\" --image $image"
  $MM search "Bat man" --image "$image" -k 3
fi
