"""What a step sees: the event, its tenant, the step's options, a logger and the services."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class StepBound(Protocol):
    """A service that hands each step its own view of it (the models: a view that budgets and
    accounts every call of that step, :mod:`sluice.models.metered`)."""

    def for_step(self, ctx: StepContext) -> Any:
        """The view of this service for the step ``ctx`` runs."""
        ...


@dataclass(frozen=True, slots=True)
class StepContext:
    """Passed to every step as ``ctx``.

    ``services`` holds the downstream clients the app wired (models, indexes, caches, outbound
    HTTP), by name: a read-only view of the app's typed services (:mod:`sluice.services`,
    built once when the app is), where the names are the fields of its groups (``kv``,
    ``egress``, ``models``, ``slo_guards``, ...) and the custom services passed to
    ``SluiceApp.from_settings(services=...)``. A unit test may pass a plain mapping of what
    its step uses. Steps look up what they need with :meth:`service` instead of building it
    themselves. ``service("models")`` is the way a step calls a model: each call is held
    against the spend budgets, settled and written to the cost ledger
    (:mod:`sluice.models.metered`).
    ``deadline`` is the event's overall deadline on the ``time.time()`` clock.
    """

    event_id: str
    workflow: str
    version: str
    tenant: str
    step: str
    attempt: int
    options: Mapping[str, Any]
    deadline: float
    logger: logging.Logger
    services: Mapping[str, Any] = field(default_factory=dict)
    #: The event's feature-flag label (declared name or ``other``), None without one. It comes
    #: from the trusted path at ingress; a ``_flag`` field of the data is only data.
    flag: str | None = None

    @property
    def idempotency_key(self) -> str:
        """A key unique to this step of this event, the same on every attempt.

        Delivery is at least once: a step may run again after a crash. A step with an outside
        effect passes this key downstream (an ``Idempotency-Key`` header, a unique column) so the
        effect happens once.
        """
        return f"{self.event_id}:{self.step}"

    def service(self, name: str) -> Any:
        """Return the service wired under ``name``, with a clear error when it is missing.

        The stable way for a step to reach a service, built-in or custom; annotate the result
        with the service's type (``egress: Egress = ctx.service("egress")``). A
        :class:`StepBound` service comes as its view for this step (``models``: every call
        through it is accounted for).
        """
        from sluice.errors import StepError

        try:
            service = self.services[name]
        except KeyError:
            raise StepError(
                f"step {self.step!r} needs service {name!r}, which the app did not wire",
                retryable=False,
            ) from None
        if isinstance(service, StepBound):
            # Workflows sit below the services they name: the service binds itself.
            return service.for_step(self)
        return service
