"""Message DB access: one client method per Message DB function, stream names, messages."""
