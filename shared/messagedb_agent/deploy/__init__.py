"""Getting the system onto Google Cloud: function packages, and the database users' grants."""
