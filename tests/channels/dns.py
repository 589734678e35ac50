"""A resolver the test controls: chosen names get chosen addresses, every other name is real."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class FakeDns:
    """Answers for names the test sets; each lookup of them is recorded."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def set(self, name: str, *addresses: str) -> None:
        """`name` resolves to `addresses` from now on (none: it does not exist)."""
        self.answers[name] = [list(addresses)]

    def once(self, name: str, *addresses: str) -> None:
        """`name` resolves to `addresses` once, then no longer exists."""
        self.answers[name] = [list(addresses), []]

    def getaddrinfo(self, real: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return real(host, port, *args, **kwargs)
        self.lookups.append(name)
        queue = self.answers[name]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))
            for address in answer
        ]


def install_fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Route `socket.getaddrinfo` through a FakeDns until the test ends."""
    fake = FakeDns()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return fake.getaddrinfo(real, host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake
