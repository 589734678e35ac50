"""A tool module that fails while it is imported, as a module with a bad setting might."""

raise RuntimeError("the billing API key is missing")
