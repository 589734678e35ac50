"""What every command shares: settings read once with friendly errors, and one-line failures."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer

from messagedb_agent.settings import Settings
from messagedb_agent.store.errors import StoreError
from messagedb_agent.threads.errors import ThreadError

ENV_FILE: list[str] = []  # set by the --config option, read by load_settings()

P = ParamSpec("P")
R = TypeVar("R")


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn known failures into one line on stderr and exit code 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise  # click's own exits are RuntimeErrors too; they carry their exit code
        except (StoreError, ThreadError, ValueError, RuntimeError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper


def load_settings() -> Settings:
    """The validated settings (and the tracing they ask for), or one `error:` line per bad
    variable and exit code 2.

    pydantic's own message spans several lines per variable and can echo the value, which
    for DATABASE_URL holds a password; only the variable and the reason are shown.
    """
    from pydantic import ValidationError

    from messagedb_agent.observability import configure_tracing

    try:
        settings = Settings(_env_file=ENV_FILE[0]) if ENV_FILE else Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        for problem in exc.errors():
            name = variable(problem["loc"])
            reason = " ".join(str(problem["msg"]).removeprefix("Value error, ").split())
            typer.secho(f"error: {name}: {reason}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # e.g. an unreadable .env file
        reason = " ".join(str(exc).split())
        typer.secho(f"error: invalid configuration: {reason}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    configure_tracing(settings)
    return settings


def variable(location: tuple[int | str, ...]) -> str:
    """The variable a validation error is about: the innermost part of its location that
    names one (a section or a key inside a JSON value does not)."""
    names = Settings.variables()
    found = next((str(part) for part in reversed(location) if part in names), None)
    return found.upper() if found else "configuration"


def progress(message: str) -> None:
    typer.echo(message, err=True)
