"""The local emulation of the cloud deployment: `messagedb-agent stack` / `make stack`."""

from messagedb_agent.stack.processes import StackError
from messagedb_agent.stack.stack import LocalStack, StackOptions, choose_transport, run

__all__ = ["LocalStack", "StackError", "StackOptions", "choose_transport", "run"]
