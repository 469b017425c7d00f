"""Development tooling: embedded servers (`servers`), their least-privilege databases
(`databases`) and `make demo` (`demo`). Needs the `dev-servers` extra; nothing in a
production worker imports it.
"""
