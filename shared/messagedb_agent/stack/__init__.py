"""The local emulation of the cloud deployment: `messagedb-agent stack` / `make stack`.

The names below are imported on first use: the functions import `stack.bounded_body` in the
cloud as well, and must not load the emulator's admin clients and the process supervisor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from messagedb_agent.stack.processes import StackError
    from messagedb_agent.stack.stack import LocalStack, StackOptions, choose_transport, run

_HOMES = {
    "StackError": "messagedb_agent.stack.processes",
    "LocalStack": "messagedb_agent.stack.stack",
    "StackOptions": "messagedb_agent.stack.stack",
    "choose_transport": "messagedb_agent.stack.stack",
    "run": "messagedb_agent.stack.stack",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


__all__ = ["LocalStack", "StackError", "StackOptions", "choose_transport", "run"]
