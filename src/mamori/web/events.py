"""Server-sent events: what happened since the page was drawn (new alerts, incidents, decisions).

Why in-process and this small: ``mamori serve`` is one process, and the things worth pushing
(a patrol run finishing, a decision planned, approved or rejected) happen inside it, in the routes
and the patrol runner that call the stages. Those publish here; every open ``GET /events`` stream
is a subscriber with its own queue. ``publish`` is safe from any thread (the patrol runner works in
a thread), and a short ring of recent events lets a browser that reconnects with ``Last-Event-ID``
catch up instead of missing what happened while it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

# Kinds of events the console understands; anything else is refused at publish time.
KINDS = frozenset({"alert", "incident", "decision", "run"})


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        """One SSE message (the data is one JSON line, so no multi-line ``data:`` splitting)."""
        body = json.dumps(self.data, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n".encode()


class Broker:
    """Publish/subscribe inside one process; subscribers are asyncio queues on their own loop."""

    def __init__(self, keep: int = 500, queue_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subs: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = set()
        self._queue_size = queue_size

    def publish(self, kind: str, data: dict[str, Any]) -> Event:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r} (one of {', '.join(sorted(KINDS))})")
        with self._lock:
            self._seq += 1
            event = Event(self._seq, kind, data)
            self._recent.append(event)
            subs = list(self._subs)
        for loop, queue in subs:
            # a subscriber whose loop has closed is going away
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_offer, queue, event)
        return event

    def since(self, last_id: int) -> list[Event]:
        with self._lock:
            return [e for e in self._recent if e.id > last_id]

    async def subscribe(self, last_id: int | None = None) -> AsyncIterator[Event]:
        """Events from now on (and, with ``last_id``, the kept ones after it), until cancelled."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        sub = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._subs.add(sub)
            backlog = [e for e in self._recent if last_id is not None and e.id > last_id]
        try:
            seen = last_id or 0
            for event in backlog:
                seen = event.id
                yield event
            while True:
                event = await queue.get()
                if event.id > seen:
                    seen = event.id
                    yield event
        finally:
            with self._lock:
                self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    """A subscriber too slow to keep up loses the oldest events, never blocks the publisher."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)


async def stream(
    broker: Broker, last_id: int | None, heartbeat: float = 15.0
) -> AsyncIterator[bytes]:
    """The body of an SSE response: a retry hint, the events, and a comment line as heartbeat (so
    proxies keep the connection and a vanished client is noticed)."""
    yield b"retry: 3000\n\n"
    events = broker.subscribe(last_id).__aiter__()
    pending: asyncio.Task[Event] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                yield b": keep-alive\n\n"
                continue
            event = pending.result()
            pending = None
            yield event.encode()
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending  # the subscription must stop running before it can be closed
        await events.aclose()  # type: ignore[attr-defined]
