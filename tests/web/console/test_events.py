"""The in-process event broker and the SSE stream the console listens to."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.web.events import Broker, Event, stream


def parse(raw: bytes) -> dict[str, str]:
    """One SSE message back into its fields (as a browser's EventSource reads them)."""
    fields: dict[str, str] = {}
    for line in raw.decode().strip("\n").split("\n"):
        key, _, value = line.partition(": ")
        fields[key] = value
    return fields


@given(
    st.sampled_from(["alert", "incident", "decision", "run"]),
    st.dictionaries(st.text(), st.one_of(st.text(), st.integers(), st.none(), st.lists(st.text()))),
)
def test_an_encoded_event_reads_back_as_itself(kind: str, data: dict[str, object]) -> None:
    raw = Event(7, kind, data).encode()
    assert raw.endswith(b"\n\n") and raw.count(b"\n\n") == 1  # one message, whatever the text
    fields = parse(raw)
    assert fields == {"id": "7", "event": kind, "data": fields["data"]}
    assert json.loads(fields["data"]) == data


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        Broker().publish("nonsense", {})


def test_subscribers_get_events_published_from_other_threads_in_order() -> None:
    broker = Broker()

    async def main() -> list[int]:
        got: list[int] = []
        ready = asyncio.Event()

        async def listen() -> None:
            events = broker.subscribe()
            it = events.__aiter__()
            first = asyncio.ensure_future(it.__anext__())
            await asyncio.sleep(0)  # the subscription is registered once the generator starts
            ready.set()
            got.append((await first).data["n"])
            while len(got) < 50:
                got.append((await it.__anext__()).data["n"])
            await it.aclose()

        task = asyncio.ensure_future(listen())
        await ready.wait()
        await asyncio.sleep(0.01)

        def publish() -> None:
            for n in range(50):
                broker.publish("alert", {"n": n})

        t = threading.Thread(target=publish)
        t.start()
        await asyncio.wait_for(task, 10)
        t.join()
        return got

    assert asyncio.run(main()) == list(range(50))
    assert broker.subscribers == 0  # the closed subscription went away


def test_a_reconnecting_client_gets_what_it_missed_after_last_event_id() -> None:
    broker = Broker(keep=3)
    for n in range(5):
        broker.publish("decision", {"n": n})
    assert [e.data["n"] for e in broker.since(2)] == [2, 3, 4]  # ids 3, 4, 5
    assert [e.data["n"] for e in broker.since(0)] == [2, 3, 4]  # only `keep` are kept

    async def first_two() -> list[int]:
        it = broker.subscribe(last_id=3).__aiter__()
        out = [(await it.__anext__()).id, (await it.__anext__()).id]
        await it.aclose()
        return out

    assert asyncio.run(first_two()) == [4, 5]


def test_a_slow_subscriber_loses_the_oldest_events_not_the_publisher_its_time() -> None:
    broker = Broker(queue_size=3)

    async def main() -> list[int]:
        it = broker.subscribe().__aiter__()
        pending = asyncio.ensure_future(it.__anext__())
        await asyncio.sleep(0)
        for n in range(10):
            broker.publish("alert", {"n": n})
        await asyncio.sleep(0.05)  # let the loop deliver
        got = [(await pending).data["n"]]
        while True:
            try:
                got.append((await asyncio.wait_for(it.__anext__(), 0.1)).data["n"])
            except TimeoutError:
                break
        await it.aclose()
        return got

    got = asyncio.run(main())
    assert got[-1] == 9 and len(got) <= 4 and got == sorted(got)


def test_the_stream_sends_a_retry_hint_events_and_heartbeats() -> None:
    broker = Broker()

    async def main() -> list[bytes]:
        body = stream(broker, None, heartbeat=0.05).__aiter__()
        out = [await body.__anext__()]  # retry hint
        pending = asyncio.ensure_future(body.__anext__())
        await asyncio.sleep(0.01)
        broker.publish("incident", {"id": "INC-1"})
        out.append(await pending)
        out.append(await body.__anext__())  # nothing more: a heartbeat comment
        await body.aclose()
        return out

    retry, message, beat = asyncio.run(main())
    assert retry.startswith(b"retry: ")
    assert parse(message)["event"] == "incident"
    assert beat == b": keep-alive\n\n"
