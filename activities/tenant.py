"""The tenant of the run an activity works for (`tdsl run --tenant`), for activities that
keep tenants apart: `current_tenant()` inside an activity, None for a run without one.

The worker's tenancy interceptor (`interpreter.tenancy`) sets it from the header every
activity of a tenant's run carries, children's and continued runs' included.
"""

from __future__ import annotations

import contextvars

__all__ = ["current_tenant"]

_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("tdsl_tenant", default=None)


def current_tenant() -> str | None:
    """The tenant of the run this activity attempt belongs to, if any."""
    return _tenant.get()


def bind_tenant(tenant: str | None) -> contextvars.Token[str | None]:
    """For the interceptor: the tenant of the activity about to run (reset with the token)."""
    return _tenant.set(tenant)


def unbind_tenant(token: contextvars.Token[str | None]) -> None:
    _tenant.reset(token)
