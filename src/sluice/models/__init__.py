"""Models behind one protocol: local classifiers, OpenAI-compatible endpoints, the simulator."""

from sluice.models.base import Model, ModelRequest, ModelResult, Usage

__all__ = ["Model", "ModelRequest", "ModelResult", "Usage"]
