"""A TCP proxy in front of PostgreSQL that a test can cut, as a network outage would.

`cut()` drops every live connection and leaves new ones hanging (accepted, never answered),
which is what a database behind a dead network looks like: not a refused port, a silent one.
`restore()` lets connections through again.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class CuttableProxy:
    def __init__(self, target_url: str) -> None:
        """`url` is `target_url` with its host and port replaced by the proxy's."""
        target = conninfo_to_dict(target_url)
        host, port = str(target.get("host") or "127.0.0.1"), int(target.get("port") or 5432)
        # a host that is a folder is PostgreSQL's Unix socket directory
        self._target: str | tuple[str, int] = (
            f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = make_conninfo(
            target_url, host="127.0.0.1", port=str(self._listener.getsockname()[1])
        )
        self._lock = threading.Lock()
        self._live: list[socket.socket] = []
        self._hanging: list[socket.socket] = []
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="cuttable-proxy").start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            live, self._live = self._live, []
        for sock in live:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False
            hanging, self._hanging = self._hanging, []
        for sock in hanging:
            _close(sock)

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.restore()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    self._hanging.append(client)
                    continue
            try:
                upstream = _connect(self._target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._live += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _connect(target: str | tuple[str, int]) -> socket.socket:
    if isinstance(target, str):
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.connect(target)
        return unix
    return socket.create_connection(target, timeout=5)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
