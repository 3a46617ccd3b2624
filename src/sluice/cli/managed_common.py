"""What ``sluice secret``, ``sluice template`` and ``sluice routing`` share: the store and the
managed configuration of an app, and who the command acts as.

The app is not built: ``sluice.yaml`` may name a ``${secret:NAME}`` that these commands are
about to set, so only the store (with the app's at-rest keyring) is opened. The command acts as
``--as NAME``: a principal of the store acts with its roles (a viewer cannot set a secret),
any other name as the command line's admin of that name (``local-admin`` by default), and the
audit trail records that name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from sluice.app import build_store, encryption_codec
from sluice.cli.common import fail
from sluice.config import load_settings
from sluice.errors import Forbidden, NotFoundError, SluiceError
from sluice.governance import LOCAL_ADMIN, AuditLog, Gate, Principal, local_admin
from sluice.governance.managed import ManagedConfig
from sluice.governance.routing import Routing, model_providers
from sluice.governance.secrets import Secrets
from sluice.governance.signing import signing_key_from_env
from sluice.governance.templates import ManagedTemplates
from sluice.guard.crypto import AesGcmCodec
from sluice.store.base import Store

T = TypeVar("T")
AsOption = Annotated[
    str,
    typer.Option("--as", help="Act as this principal (its roles), or as an admin of this name."),
]
WhyOption = Annotated[str, typer.Option("--why", help="Why: recorded in the audit trail.")]
#: Exit code of a refusal (the principal lacks the permission), apart from other errors (2).
FORBIDDEN_EXIT = 3


async def acting_as(store: Store, name: str) -> Principal:
    """The principal ``name`` of the store, else the command line's admin called ``name``."""
    try:
        return Principal.from_record(await store.get_principal(name))
    except NotFoundError:
        return local_admin(name or LOCAL_ADMIN)


def with_managed(
    app_dir: Path, who: str, fn: Callable[[ManagedConfig, Principal], Awaitable[T]]
) -> T:
    """Run ``fn`` with the app's managed configuration open, as ``who``.

    A refusal exits with :data:`FORBIDDEN_EXIT`, other errors with 2, each one line on stderr.
    """

    async def go() -> T:
        settings = load_settings(app_dir)
        codec = encryption_codec(settings)
        store = build_store(settings, codec)
        await store.open()
        try:
            managed = ManagedConfig(
                Gate(AuditLog(store, signing_key=signing_key_from_env(settings.env))),
                Secrets(store, codec if isinstance(codec, AesGcmCodec) else None),
                ManagedTemplates(store),
                Routing(store, model_providers(settings.extra.get("models"))),
            )
            return await fn(managed, await acting_as(store, who))
        finally:
            await store.aclose()

    try:
        return asyncio.run(go())
    except Forbidden as exc:
        raise fail(exc, FORBIDDEN_EXIT) from None
    except SluiceError as exc:
        raise fail(exc) from None
