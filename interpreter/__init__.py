"""The interpreter: one generic Temporal workflow, its worker, servers and CLI."""
