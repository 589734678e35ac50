"""Child processes of the local stack, each in its own process group so stopping leaves no orphan.

A service's output is kept (the last lines, for error messages) and, when asked, echoed with
its name in front, so one terminal shows what every function logs.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import httpx

# functions-framework's server (gunicorn) closes a keep-alive connection idle for 2 s. A client
# that sends on one at that very moment gets "Server disconnected without sending a response",
# so the stack's own clients (the relay trigger, the built-in topic's pushes) drop theirs first.
FUNCTION_CLIENT_LIMITS = httpx.Limits(keepalive_expiry=1.0)


class StackError(RuntimeError):
    """The local stack could not start; the message says which part and why."""


class Service:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        echo: TextIO | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.echo = echo
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> Service:
        try:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,  # its own process group: signalled as one, never by Ctrl-C
            )
        except OSError as exc:
            raise StackError(f"could not start {self.name} ({self.argv[0]}): {exc}") from exc
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.tail.append(line)
            if self.echo is not None:
                with contextlib.suppress(ValueError, OSError):
                    print(f"[{self.name}] {line}", file=self.echo, flush=True)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return "\n".join(self.tail)

    def why(self) -> str:
        """How the process ended, in a few words; its last lines when it failed on its own."""
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"pid {self.pid} killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"pid {self.pid} killed by signal {-code}"
        last = "\n".join(list(self.tail)[-5:])
        return f"pid {self.pid} exited with code {code}" + (f":\n{last}" if last else "")

    def restart(self) -> Service:
        """Start the same command again, once what is left of the last run is gone."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)  # a worker orphaned by its master
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        if self._reader is not None:
            self._reader.join(2)
        return self.start()

    def terminate(self) -> None:
        """Ask the whole group to stop (SIGTERM) without waiting: stop several at once."""
        if self.process is not None and self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after `timeout`."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(5)
        # Grandchildren (the emulator's JVM under gcloud) may outlive their parent.
        _signal_group(process.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(2)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def process_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to ask: it answered the signal
    return state not in ("Z", "X")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_free(host: str, port: int, what: str) -> int:
    """The port itself, or a free one for 0; a clear error when something already listens.

    The probe binds as the servers do, with SO_REUSEADDR: connections of a stack stopped a
    moment ago sit in TIME_WAIT on these ports for a minute, which keeps a plain bind out but
    not a server's; on Linux a port something listens on still refuses it.
    """
    if port == 0:
        return free_port(host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise StackError(
                f"port {port} for {what} is in use on {host}; stop what holds it or choose "
                "other ports (0 picks free ones)"
            ) from None
    return port


def http_answers(url: str) -> bool:
    """True once anything answers HTTP at `url`, whatever the status."""
    try:
        httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    return True


def wait_until(
    ready: Callable[[], bool],
    what: str,
    *,
    timeout: float = 60.0,
    service: Service | None = None,
    interval: float = 0.2,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if service is not None and not service.running:
            raise StackError(f"{what} exited during start-up:\n{service.output()}")
        if time.monotonic() > deadline:
            detail = f":\n{service.output()}" if service is not None else ""
            raise StackError(f"{what} did not become ready within {timeout:.0f}s{detail}")
        time.sleep(interval)


def python_tool(name: str) -> str:
    """A console script installed beside this interpreter (the virtualenv's own)."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else name
