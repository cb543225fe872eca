"""Benchmarks. Not tests: they measure; ``tests/bench`` runs them at a small size."""
