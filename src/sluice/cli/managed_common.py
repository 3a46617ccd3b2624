"""What ``sluice secret``, ``sluice template`` and ``sluice routing`` share: the store and the
managed configuration of an app, and who the command acts as.

The app is not built: ``sluice.yaml`` may name a ``${secret:NAME}`` that these commands are
about to set, so only the store (with the app's at-rest keyring) is opened. The command acts
as ``--as NAME`` (``SLUICE_AS``) like every governed command (:mod:`sluice.cli.governed`): a
stored principal with its roles (a viewer cannot set a secret: exit 3, nothing changed), or
``local-admin``. The permission each action needs is checked by
:class:`~sluice.governance.managed.ManagedConfig`, the same object the HTTP admin routes use,
and every change is audited there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sluice.app import build_store, encryption_codec
from sluice.cli.common import fail
from sluice.cli.governed import FORBIDDEN_EXIT, acting_principal
from sluice.config import load_settings
from sluice.errors import Forbidden, SluiceError
from sluice.governance import Principal, gate_for
from sluice.governance.managed import ManagedConfig
from sluice.governance.routing import Routing, model_providers
from sluice.governance.secrets import Secrets
from sluice.governance.templates import ManagedTemplates
from sluice.guard.crypto import AesGcmCodec

T = TypeVar("T")


def with_managed(
    app_dir: Path, who: str, fn: Callable[[ManagedConfig, Principal], Awaitable[T]]
) -> T:
    """Run ``fn`` with the app's managed configuration open, as ``who``.

    A refusal exits with :data:`~sluice.cli.governed.FORBIDDEN_EXIT`, other errors with 2, each
    one line on stderr.
    """

    async def go() -> T:
        settings = load_settings(app_dir)
        codec = encryption_codec(settings)
        store = build_store(settings, codec)
        await store.open()
        try:
            managed = ManagedConfig(
                gate_for(store, settings.env),
                Secrets(store, codec if isinstance(codec, AesGcmCodec) else None),
                ManagedTemplates(store),
                Routing(store, model_providers(settings.extra.get("models"))),
            )
            return await fn(managed, await acting_principal(store, who))
        finally:
            await store.aclose()

    try:
        return asyncio.run(go())
    except Forbidden as exc:
        raise fail(exc, FORBIDDEN_EXIT) from None
    except SluiceError as exc:
        raise fail(exc) from None
