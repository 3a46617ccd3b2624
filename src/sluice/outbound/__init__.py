"""Every HTTP call Sluice makes to the outside world, in one package.

Steps' calls (:mod:`~sluice.outbound.egress`: the allowlist, named secrets, one pooled
session), signed webhook deliveries (:mod:`~sluice.outbound.webhooks`, signed as in
:mod:`~sluice.outbound.signing`), alert posts (through the egress session), model endpoints
and the AI gateway's provider deployments (:mod:`~sluice.outbound.upstream`,
:mod:`~sluice.outbound.http1`) all open their connection pools through
:func:`~sluice.outbound.sessions.client_session`. An egress policy added later has one place
to sit. The package depends on nothing of Sluice above ``errors`` and ``config``.
"""
