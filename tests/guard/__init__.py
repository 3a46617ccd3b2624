"""Tests of sluice.guard: PII masking and encryption at rest."""
