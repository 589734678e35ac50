"""The step protocol: read a thread, decide, claim, execute one effect, append, follow up."""
