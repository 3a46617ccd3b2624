"""Telemetry: Prometheus metrics (tracing and structured logs come later)."""
