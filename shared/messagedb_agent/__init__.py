"""An event-sourced AI agent on Message DB."""
