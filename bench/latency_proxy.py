"""A TCP proxy that adds network latency: every chunk read from either side is written
to the other `delay` seconds later, in order, at full bandwidth. It stands for a managed
database in another region (a round trip costs 2 x `delay`), where a backup waits on the
network far more than it works on the local CPUs.

    with LatencyProxy(("127.0.0.1", 5432), delay=0.010, listeners=10) as proxy:
        proxy.ports  # ten ports, each another "server" to the bot (host:port)

With `window` (bytes), at most that much is in flight per connection and direction, as
a TCP window over a long link allows: one connection then moves at most `window` /
`delay` bytes per second, however fast the link, and parallel connections add up.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class LatencyProxy:
    def __init__(
        self,
        target: tuple[str, int],
        *,
        delay: float,
        listeners: int = 1,
        window: int | None = None,
    ) -> None:
        self.target = target
        self.delay = delay
        self.window = window
        self.listeners = listeners
        self.ports: list[int] = []
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="latency-proxy")

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the latency proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        servers = [
            self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
            for _ in range(self.listeners)
        ]
        self.ports = [s.sockets[0].getsockname()[1] for s in servers]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, client_r: Any, client_w: Any) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy `reader` to `writer`, each chunk `delay` after it arrived; EOF likewise."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        window = self.window
        in_flight = 0
        room = asyncio.Event()
        room.set()

        async def read() -> None:
            nonlocal in_flight
            with contextlib.suppress(OSError):
                while data := await reader.read(min(65536, window or 65536)):
                    queue.put_nowait((loop.time() + self.delay, data))
                    in_flight += len(data)
                    if window is not None and in_flight >= window:
                        room.clear()
                        await room.wait()
            queue.put_nowait((loop.time() + self.delay, b""))

        async def write() -> None:
            nonlocal in_flight
            try:
                while True:
                    due, data = await queue.get()
                    if (wait := due - loop.time()) > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
                    in_flight -= len(data)
                    if window is None or in_flight < window:
                        room.set()
            except OSError:
                pass
            finally:
                writer.close()

        await asyncio.gather(read(), write())
