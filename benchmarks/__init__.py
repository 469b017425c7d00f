"""`make bench`: the interpreter against hand-written workflows on one real dev server.

Kept import-light on purpose: the sandbox re-imports `benchmarks.handwritten` (and so
this package) for every hand-written workflow run, exactly as it re-imports
`interpreter.runtime.workflow` for every interpreter run.
"""
