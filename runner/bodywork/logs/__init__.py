"""Logging for every layer that logs (k8s, engine, cli): structlog, imported on first use."""
