"""Sluice: an opinionated runtime for AI workflows in production."""

from sluice.errors import (
    AdmissionError,
    BudgetExceededError,
    ConfigError,
    NotFoundError,
    SluiceError,
    StepError,
    StepOutputError,
    StoreError,
    WorkflowError,
)

__all__ = [
    "AdmissionError",
    "BudgetExceededError",
    "ConfigError",
    "NotFoundError",
    "SluiceError",
    "StepError",
    "StepOutputError",
    "StoreError",
    "WorkflowError",
]
__version__ = "0.1.0"
