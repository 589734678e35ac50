"""Tools from the deployer's own modules: `TOOL_MODULES` names them, the engine loads them.

Every entry point (the step function, the CLI, the demo) builds its engine from settings, so
a setting is the one place a tool can be added that all of them see. A module's tools are the
`@tool` functions it defines itself; one it merely imports (a built-in, say) is not taken
again. A name that cannot be imported, or a module with no tools, stops the start-up with a
sentence saying which, rather than leaving the model without the tool it was meant to have.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType

from messagedb_agent.tools.registry import Tool, declared_tool


class ToolModuleError(ValueError):
    """A module named in `TOOL_MODULES` cannot be used; the message says why and what to do."""


def module_names(setting: str | None) -> list[str]:
    """The module names of a comma-separated setting, without blanks or repeats."""
    names = [name.strip() for name in (setting or "").split(",")]
    return list(dict.fromkeys(name for name in names if name))


def load_tool_modules(names: Iterable[str]) -> list[Tool]:
    """The tools of each module, in the order the modules are named and the tools defined."""
    return [found for name in names for found in tools_of(_import(name))]


def tools_of(module: ModuleType) -> list[Tool]:
    """The `@tool` functions `module` defines; a module without any is a configuration error."""
    found = [
        declared
        for value in vars(module).values()
        if getattr(value, "__module__", None) == module.__name__
        and (declared := declared_tool(value)) is not None
    ]
    if not found:
        raise ToolModuleError(
            f"TOOL_MODULES names {module.__name__!r}, which defines no @tool functions; "
            "decorate its tools with messagedb_agent.tools.tool or remove it from TOOL_MODULES."
        )
    return found


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ToolModuleError(
            f"TOOL_MODULES names {name!r}, which cannot be imported ({exc}); "
            "check the name and that the module is on the Python path."
        ) from exc
    except Exception as exc:
        raise ToolModuleError(
            f"TOOL_MODULES names {name!r}, which failed while importing: "
            f"{type(exc).__name__}: {exc}."
        ) from exc
