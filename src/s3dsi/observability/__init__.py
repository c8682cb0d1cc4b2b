"""Logs (structlog, secret redaction) and, later, metrics: plain modules beside the daemon."""
