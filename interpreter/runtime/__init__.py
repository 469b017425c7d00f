"""The sandboxed, replay-critical runtime: what runs inside Temporal's workflow sandbox.

Everything here must replay forever: deterministic, no I/O, no clocks, no randomness,
no set iteration order. It imports only the standard library, `temporalio`, `dsl` and
`interpreter.contract` (a test reads the imports to hold that line). `workflow` is the
one interpreter workflow, `scheduler` its readiness bookkeeping, `progress` the step
states it reports. A deliberate behaviour change goes behind a patch asked in the
run's first activation (`versions`).
"""
