"""NetSuite ERP connector (SuiteTalk REST record service) and its local emulator."""

from connectors.netsuite.client import NetSuiteClient

__all__ = ["NetSuiteClient"]
