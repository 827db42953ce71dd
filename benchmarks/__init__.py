"""Runnable benchmarks: ``python -m benchmarks.<name>`` from the repository root."""
