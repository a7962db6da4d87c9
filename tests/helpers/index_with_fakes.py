"""Run the real ``mmretrieve`` command line with the FAKE encoders of tests/fakes.py (test-only).

Everything but model loading is the product's own code path (click commands, Index, Indexer,
LanceDB): only ``mmretrieve.encoders.load_text_encoder`` / ``load_image_encoder`` are replaced, so
a subprocess starts in about a second instead of loading torch. Used by the crash-safety tests
and bench/crash.py; nothing in src/ knows about it.

Example:
    python tests/helpers/index_with_fakes.py index ./corpus --index ./idx --no-progress
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
LAUNCHER_PATH = Path(__file__).resolve()


def install_fake_encoders() -> Callable[[], None]:
    """Make every model load in this process return a FAKE encoder (same dims every time).
    Returns a function that puts the real loaders back."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import mmretrieve.encoders as encoders
    from fakes import FakeClipEncoder, FakeTextEncoder

    def text(name: str, **_: Any) -> FakeTextEncoder:
        return FakeTextEncoder()

    def image(name: str, **_: Any) -> FakeClipEncoder:
        return FakeClipEncoder()

    real = encoders.load_text_encoder, encoders.load_image_encoder
    encoders.load_text_encoder = text  # type: ignore[assignment]
    encoders.load_image_encoder = image  # type: ignore[assignment]

    def undo() -> None:
        encoders.load_text_encoder, encoders.load_image_encoder = real

    return undo


def main(argv: list[str] | None = None) -> None:
    install_fake_encoders()
    from mmretrieve.interfaces.cli import run

    run(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
