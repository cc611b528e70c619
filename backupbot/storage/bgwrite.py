"""`BackgroundWriter`: a file written by a thread of its own, a few chunks behind.

Unpacking a restore's archive decompresses in one thread and writes the result in another
(zstd and the kernel's copy into the page cache both release the GIL), so on two cores the
unpack takes about as long as the decompression alone. The queue is bounded: memory stays
at `depth` chunks however slow the disk is.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from types import TracebackType
from typing import IO

_DONE = None


class BackgroundWriter:
    """Writes what `write` is given to `out`, in order, from a thread. A write error is
    raised by the next `write` or by `close`; after one, the rest is discarded. Use it as
    a context manager (or call `close`) so the thread has finished before `out` closes."""

    def __init__(self, out: IO[bytes], *, depth: int = 16, name: str = "unpack-write") -> None:
        self._out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self.size = 0  # bytes handed to `write`
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        if self._error is not None:
            raise self._error
        if data:
            self._queue.put(data)
            self.size += len(data)
        return len(data)

    def _run(self) -> None:
        try:
            while (data := self._queue.get()) is not _DONE:
                self._out.write(data)
        except BaseException as exc:  # reported to the producer; drain so it never blocks
            self._error = exc
            while self._queue.get() is not _DONE:
                pass

    def close(self) -> None:
        """Wait for every queued chunk to be written; raise the write error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(_DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        with contextlib.suppress(BaseException):  # already failing: just stop the thread
            self.close()
