"""Governance: managed configuration (secrets, prompt templates, model routing)."""
