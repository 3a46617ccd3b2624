"""Sluice: an opinionated runtime for AI workflows in production.

The public surface is what this module exports; everything else may change.
"""

from sluice.app import SluiceApp
from sluice.config import AppSettings, PoolSettings, RuntimeSettings, load_settings
from sluice.errors import (
    AdmissionError,
    BudgetExceededError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    SluiceError,
    StepError,
    StepOutputError,
    StoreError,
    WorkflowError,
)
from sluice.workflow import JSONObject, Step, StepContext, Workflow, WorkflowRegistry

__all__ = [
    "AdmissionError",
    "AppSettings",
    "BudgetExceededError",
    "ConfigError",
    "InvalidInputError",
    "JSONObject",
    "NotFoundError",
    "PoolSettings",
    "RuntimeSettings",
    "SluiceApp",
    "SluiceError",
    "Step",
    "StepContext",
    "StepError",
    "StepOutputError",
    "StoreError",
    "Workflow",
    "WorkflowError",
    "WorkflowRegistry",
    "load_settings",
]
__version__ = "0.1.0"
