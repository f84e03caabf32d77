"""``mamori serve``: one process for the console, the REST API, TAXII 2.1 and the decision stream."""

import socket
from multiprocessing.reduction import DupFd, register
from typing import Any

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = 1,
) -> None:
    """Serve the console (/), the REST API (/api/), TAXII 2.1 (/taxii2/) and the CrowdSec
    decision stream (/v1/) from this process, or from ``workers`` processes (one per core for
    TAXII and REST read load; the console's live /events then reach only the browsers connected
    to the process that saw the change, a page reload shows everything)."""
    import uvicorn

    if workers > 1:
        serve_workers(host, port, workers, log_level="info")
        return
    from mamori.web.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


def serve_workers(host: str, port: int, workers: int, **options: Any) -> None:
    """uvicorn's multi-process mode: each worker builds its own app (and its own Store, from
    ``MAMORI_STATE_URL`` or the default), all accepting on one listening socket.

    Two changes to ``uvicorn.run(..., workers=N)``, both about the listening socket:

    - uvicorn binds it with protocol 0, so asyncio in the workers does not set TCP_NODELAY on
      accepted connections, and a response written in two parts (headers, body) waits for the
      client's delayed ACK: 40 ms a request on Linux. Here it is a TCP socket.
    - asyncio accepts up to ``backlog`` connections per wake-up, so the first worker to wake
      took every connection a client opened at once (two keep-alive connections: both in one
      worker, the other idle). Here a worker accepts one per wake-up (the kernel's queue stays
      2048 deep), and an idle worker takes the next.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "mamori.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        backlog=1,  # connections accepted per wake-up; the queue's depth: _Listener.listen
        **options,
    )
    bound = config.bind_socket()
    sock = _Listener(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()


class _Listener(socket.socket):
    """A listening socket whose accept queue stays deep whatever ``listen`` is asked."""

    def listen(self, backlog: int = 0) -> None:
        super().listen(max(backlog, 2048))


def _rebuild_listener(df: Any, family: int, kind: int, proto: int) -> _Listener:
    return _Listener(family, kind, proto, fileno=df.detach())


def _reduce_listener(s: _Listener) -> tuple[Any, tuple[Any, ...]]:
    """Sent to the spawned workers as itself (a plain socket would come back as socket.socket)."""
    return _rebuild_listener, (DupFd(s.fileno()), s.family, s.type, s.proto)


register(_Listener, _reduce_listener)
