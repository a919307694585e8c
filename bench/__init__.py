"""`make bench`: the service measured against raw Temporal on the same embedded server, in one run."""
