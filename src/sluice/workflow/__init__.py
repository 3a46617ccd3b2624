"""Workflows: the model, the YAML loader, the registry and the built-in steps."""

from sluice.workflow.context import StepContext
from sluice.workflow.loader import load_workflow_file, parse_workflow
from sluice.workflow.model import JSONObject, Step, StepFn, Workflow
from sluice.workflow.registry import WorkflowRegistry

__all__ = [
    "JSONObject",
    "Step",
    "StepContext",
    "StepFn",
    "Workflow",
    "WorkflowRegistry",
    "load_workflow_file",
    "parse_workflow",
]
