"""Builds connector clients from settings. The only place the domain learns URLs and keys."""

from __future__ import annotations

from django.conf import settings

from connectors.base import ErpConnector
from connectors.netsuite.client import NetSuiteClient


def erp_connector(system: str = "netsuite") -> ErpConnector:
    if system != "netsuite":
        raise ValueError(f"no ERP connector for {system!r}")
    return NetSuiteClient(
        settings.NETSUITE_BASE_URL, token=settings.NETSUITE_TOKEN, timeout=settings.NETSUITE_TIMEOUT
    )


def erp_customer_connector(system: str = "netsuite") -> NetSuiteClient:
    """The ERP client for the customer master (``upsert_customer``, ``get_customer``)."""
    if system != "netsuite":
        raise ValueError(f"no ERP customer connector for {system!r}")
    return NetSuiteClient(
        settings.NETSUITE_BASE_URL, token=settings.NETSUITE_TOKEN, timeout=settings.NETSUITE_TIMEOUT
    )
