"""`--help` as people expect it: flags without a value placeholder, ARGUMENTS in capitals.

typer's rich help labels every flag `<bool>`, though a flag takes no value, and writes a
required argument as `{message}` in the usage line, though the help text calls it MESSAGE.
"""

from __future__ import annotations

from typing import Any

from typer._click.core import Context, Parameter  # typer's own copy of click
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _plain(params: list[Parameter]) -> list[Parameter]:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""  # typer shows the metavar instead of the type; empty shows none
    return params


def _usage(command: TyperCommand | TyperGroup, ctx: Context) -> list[str]:
    """The usage line's pieces: [OPTIONS], then each argument as MESSAGE or [MESSAGE]."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = param.metavar or (param.name or "").upper()
            name = name if param.required else f"[{name}]"
            pieces.append(name + ("..." if param.nargs != 1 else ""))
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


class PlainCommand(TyperCommand):
    """A command whose help shows flags bare and arguments in capitals."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _plain(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return _usage(self, ctx)


class PlainGroup(TyperGroup):
    """The command group: its own help, and every command under it, shown plainly.

    Commands registered elsewhere (sub-apps added with `add_typer`) are made plain here too,
    so each module need not remember to ask for it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if type(command) is TyperCommand:
                command.__class__ = PlainCommand  # adds behaviour only, no state
            elif type(command) is TyperGroup:
                command.__class__ = PlainGroup
                for inner in command.commands.values():
                    if type(inner) is TyperCommand:
                        inner.__class__ = PlainCommand

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _plain(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return [*_usage(self, ctx), self.subcommand_metavar]
