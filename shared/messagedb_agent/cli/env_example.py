"""`.env.example`, written from the `Settings` class so it lists every variable there is.

A hand-kept example drifts: variables are added to the settings and never reach it. This
writes one commented-out line per variable with its default, under its description, in the
order the settings declare them; a test checks the committed file equals this text.

    python -m messagedb_agent.cli.env_example > .env.example
"""

from __future__ import annotations

import inspect
import json
import textwrap
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from messagedb_agent.settings import Settings

WIDTH = 96

HEADER = """\
# Every setting of messagedb-agent, with its default. Copy to .env (or pass with
# `messagedb-agent --config FILE`) and uncomment what you change; environment variables win
# over this file. Generated from the Settings class (shared/messagedb_agent/settings/):
#   python -m messagedb_agent.cli.env_example > .env.example
"""

SHARED = "Shared by several parts"


def default_text(field: FieldInfo) -> str:
    """A field's default as it would be written in the file; unset and secrets are blank."""
    value = field.get_default(call_default_factory=True)
    if value is None or isinstance(value, SecretStr):
        return ""  # a secret's built-in value is for local work only; it is never suggested
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Path | str | int):
        return str(value)
    return json.dumps(value, default=str)


def _comment(text: str) -> list[str]:
    return textwrap.wrap(" ".join(text.split()), WIDTH - 2, break_on_hyphens=False) or [""]


def _variable(name: str, field: FieldInfo) -> list[str]:
    description = field.description or ""
    if isinstance(field.get_default(call_default_factory=True), SecretStr):
        description += " Unset: a built-in value for local work only."
    lines = [f"# {line}".rstrip() for line in _comment(description)]
    return [*lines, f"# {name.upper()}={default_text(field)}"]


def _heading(title: str) -> list[str]:
    return ["", f"# -- {title} " + "-" * max(3, WIDTH - len(title) - 6)]


def env_example(settings: type[Settings] = Settings) -> str:
    """The text of `.env.example`: every variable `settings` declares, grouped by section."""
    lines = [HEADER.rstrip("\n")]
    shared = [(n, f) for n, f in settings.model_fields.items() if not _section(f)]
    if shared:
        lines += _heading(SHARED)
        for name, field in shared:
            lines += ["", *_variable(name, field)]
    for field in settings.model_fields.values():
        section = _section(field)
        if section is None:
            continue
        title = (inspect.getdoc(section) or section.__name__).splitlines()[0].rstrip(".")
        lines += _heading(title)
        for name, inner in section.model_fields.items():
            lines += ["", *_variable(name, inner)]
    return "\n".join(lines) + "\n"


def _section(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def main() -> None:
    print(env_example(), end="")


if __name__ == "__main__":
    main()
