"""The PostgreSQL side: the store (`store`: the connection, with one mixin per table
group: `migrations`, `definitions`, `runs`, `workers`), the registry as a subworkflow
catalog (`registry`), each step attempt's events (`events`) and their time order
(`timeline`), and the projector that copies what Temporal knows about runs into it
(`projector`).

The workflow never touches the database: an unreachable PostgreSQL holds no run up.
"""
