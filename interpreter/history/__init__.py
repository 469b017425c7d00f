"""The PostgreSQL side: the definition registry and run history (`store`), and the
projector that copies what Temporal knows about runs into it (`projector`).

The workflow never touches the database: an unreachable PostgreSQL holds no run up.
"""
