"""Every HTTP call Sluice makes to the outside world, in one package.

Steps' calls (:mod:`~sluice.outbound.egress`: the app's policy, named secrets, one pooled
session), signed webhook deliveries (:mod:`~sluice.outbound.webhooks`, signed as in
:mod:`~sluice.outbound.signing`), alert posts (through the egress session), model endpoints
and the AI gateway's provider deployments (:mod:`~sluice.outbound.upstream`,
:mod:`~sluice.outbound.http1`) all open their connections under one
:class:`~sluice.outbound.policy.EgressPolicy` (allowlist, refused address ranges, one lookup
per connection, proxy, bounds): sessions through
:func:`~sluice.outbound.sessions.client_session`, which requires it, the relay pool through
its own ``policy``. The package depends on nothing of Sluice above ``errors`` and ``config``.
"""
