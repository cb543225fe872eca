"""Puts the current correlation id on every log record."""

from __future__ import annotations

import logging

from connectors import http


class CorrelationIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = http.get_correlation_id() or "-"
        return True
