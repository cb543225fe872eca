"""Adapters to external systems. Imports nothing from ``sync`` or ``controltower``."""
