"""Pure functions from a list of events to a value: no I/O, no clock, unknown events skipped."""
