"""Telemetry: Prometheus metrics, OpenTelemetry traces (with a local span store), the cost
ledger and structured logs."""
