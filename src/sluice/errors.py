"""One rooted error hierarchy for Sluice.

Defined here, and (in brackets) next to the code that raises them::

    SluiceError
    ├── ConfigError                 settings or files that cannot be used; carries every problem
    │   ├── WorkflowError           a workflow definition that does not validate
    │   ├── [KeyringError]          guard.crypto: an encryption key or keyring is unusable
    │   ├── [RetrievalError]        retrieval: EmbedderMismatchError, IndexFormatError
    │   ├── [CacheConfigError]      cache: an invalid caches section
    │   ├── [ArtifactError]         models.artifacts: a trained model artifact is unusable
    │   ├── [SecretsUnavailableError] governance.secrets: no keyring to encrypt secrets with
    │   ├── [ModelDependencyError]  models.features: the models extra is not installed
    │   ├── [SchemaError]           contracts.schemas: a contract's schema that cannot be used
    │   └── [MockError]             contracts.mock: a partner's spec that cannot be mocked
    ├── NotFoundError               an event, workflow or other named thing does not exist
    ├── StoreError                  the store failed or holds something it cannot read
    │   └── [EncryptionError]       guard.crypto: UnknownKeyError, TamperedDataError
    ├── AuthError                   missing or invalid credentials (API key, webhook signature)
    ├── Forbidden                   a known principal lacks the permission an action needs
    ├── IdempotencyConflictError    an idempotency key reused with a different request body
    ├── AdmissionError              work refused at the door (full queue, guard closed)
    │   ├── RateLimitedError        the tenant's rate limit is used up
    │   └── [BudgetExhaustedError]  reliability.spend: a spend budget is used up
    ├── InvalidInputError           an event's input does not match its workflow's schema
    ├── [KVError]                   kv: KVUnavailableError (the shared KV is away)
    ├── [IndexFullError]            retrieval: an index at its size bound
    └── StepError                   a step failed; ``retryable`` and ``retry_after`` steer retries
        ├── BudgetExceededError     a step or event time budget was used up
        ├── StepOutputError         a step returned something that is not a JSON object
        ├── [ModelOutputError]      models.openai_client: a model's answer is not the schema
        ├── [TemplateError]         prompts: a prompt template cannot render with the values given
        ├── [BreakerOpenError]      reliability.breaker: the downstream's breaker is open
        ├── [ModelNotAllowedError]  governance.routing: the routing rules refuse the model
        └── [UpstreamError]         gateway.upstream: a provider refused or failed a relayed call

Retry behaviour is carried on the error itself (``retryable``, ``retry_after``) so the
runtime never has to guess from exception types it does not own.
"""

from __future__ import annotations

from collections.abc import Sequence


class SluiceError(Exception):
    """Root of every error Sluice raises on purpose."""


class ConfigError(SluiceError):
    """Settings or files that cannot be used.

    ``problems`` lists every problem found, each prefixed with the path of the offending field
    (``steps[2].pool: unknown pool 'gpu'``), so a user fixes them all in one pass.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        text = message if not self.problems else message + "\n  " + "\n  ".join(self.problems)
        super().__init__(text)


class MissingExtraError(ConfigError):
    """The configuration needs a package of an optional extra that is not installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the {module!r} package, which is not installed:"
            f" pip install 'sluicegate[{extra}]'"
        )
        self.extra = extra


class WorkflowError(ConfigError):
    """A workflow definition that does not validate."""


class NotFoundError(SluiceError):
    """An event, workflow or other named thing does not exist."""


class StoreError(SluiceError):
    """The store failed, or holds data it cannot read."""


class AdmissionError(SluiceError):
    """Work refused at the door; ``retry_after`` tells the caller when to come back."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(SluiceError):
    """Missing or invalid credentials: an API key or a webhook signature."""


class Forbidden(SluiceError):  # noqa: N818 - HTTP's word, the name the governance API uses
    """A known principal lacks the permission an action needs (HTTP 403).

    ``principal`` and ``permission`` name who was refused what, so the refusal can say so.
    """

    def __init__(self, principal: str, permission: str) -> None:
        super().__init__(f"{principal!r} lacks the permission {permission!r}")
        self.principal = principal
        self.permission = permission


class IdempotencyConflictError(SluiceError):
    """An idempotency key was reused with a different request body."""


class RateLimitedError(AdmissionError):
    """The caller's rate limit is used up; ``retry_after`` says when a token is free again."""


class InvalidInputError(SluiceError):
    """An event's input does not match its workflow's input schema; ``problems`` lists all."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        text = message if not self.problems else message + "\n  " + "\n  ".join(self.problems)
        super().__init__(text)


class StepError(SluiceError):
    """A step failed.

    ``retryable`` says whether running the step again may help; ``retry_after`` (seconds) is
    a lower bound on the delay before the next attempt, e.g. from a provider's ``Retry-After``.
    """

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class BudgetExceededError(StepError):
    """A time budget was used up; ``budget`` names which one (``step`` or ``event``)."""

    def __init__(self, message: str, *, budget: str, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.budget = budget


class StepOutputError(StepError):
    """A step returned something that is not a JSON object; running it again will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
