"""Queries that arrive together are encoded together.

Each query model (bge, CLIP's text tower, CLIP's image tower) gets one ``Batcher``: a thread that
takes what is waiting and runs it as one batch. It never waits for a batch to fill: a lone query
starts at once, and queries that arrive while a batch runs form the next one. So one search at a
time costs a thread hand-off (tens of microseconds), and many at once cost far less per query than
one model call each (docs/BENCHMARKS.md, load test). At query time each model function is only
called from one batcher's thread, so a tokenizer that is not safe to share between threads never
is; and a slow batch of images does not hold up text queries.

A batch that fails is run again one item at a time, so one bad query fails alone.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from ..encoders.base import ImageTextEncoder, TextEncoder

T = TypeVar("T")


class Batcher(Generic[T]):
    """``submit(item)`` -> a Future of ``fn([item, ...])[i]``, batched with what else waits; a
    Future answered holds ``finished_at`` (``time.perf_counter()`` when its batch ended)."""

    def __init__(self, fn: Callable[[Sequence[T]], Any], max_batch: int, name: str):
        self.fn = fn
        self.max_batch = max(1, int(max_batch))
        self.name = name
        self._queue: queue.SimpleQueue[tuple[T, Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.batches = 0  # batches run, and items in them (tests, benchmarks)
        self.items = 0

    def submit(self, item: T) -> Future[Any]:
        done: Future[Any] = Future()
        self._start()
        self._queue.put((item, done))
        return done

    def __call__(self, item: T) -> Any:
        return self.submit(item).result()

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child has the queue but not the thread
                self._queue, self._thread, self._pid = queue.SimpleQueue(), None, os.getpid()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name=f"mmretrieve-batch-{self.name}", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list[tuple[T, Future[Any]]]) -> None:
        live = [(item, done) for item, done in batch if done.set_running_or_notify_cancel()]
        if not live:
            return
        self.batches += 1
        self.items += len(live)
        try:
            rows = self.fn([item for item, _ in live])
        except BaseException as exc:  # noqa: BLE001 - handed to the callers
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            for item, done in live:  # find the one that fails; the others still get answers
                try:
                    row = self.fn([item])[0]
                except BaseException as one:  # noqa: BLE001
                    done.set_exception(one)
                else:
                    done.finished_at = time.perf_counter()  # type: ignore[attr-defined]
                    done.set_result(row)
            return
        finished = time.perf_counter()
        for (_, done), row in zip(live, rows, strict=True):
            done.finished_at = finished  # type: ignore[attr-defined]
            done.set_result(row)


class QueryEncoders:
    """The batchers of one searcher's models, made on first use: bge, CLIP's text tower and
    CLIP's image tower each have one, so a query's models run side by side on the cores and a
    slow batch of images does not hold up text.

    Side by side beat one after the other once OpenVINO stopped pinning its threads to cores
    (openvino.py): bge and CLIP text for one query took 11 ms side by side against 14-15 ms in
    turn (OpenVINO bf16, 2-core AMD; docs/BENCHMARKS.md). Pinned, both models' threads sat on
    the same cores and side by side was no faster."""

    TEXT_BATCH = 32
    IMAGE_BATCH = 8  # a batch of images takes long: later queries wait for at most this many

    def __init__(self, text_encoder: TextEncoder, image_encoder: ImageTextEncoder | None) -> None:
        self.text: Batcher[str] = Batcher(text_encoder.encode_queries, self.TEXT_BATCH, "bge")
        self.clip_text: Batcher[str] | None = None
        self.image: Batcher[Any] | None = None
        if image_encoder is not None:
            self.clip_text = Batcher(image_encoder.encode_texts, self.TEXT_BATCH, "clip-text")
            self.image = Batcher(image_encoder.encode_images, self.IMAGE_BATCH, "image")
