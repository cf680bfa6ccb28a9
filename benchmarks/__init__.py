"""Benchmarks for jobkit; run ``python -m benchmarks.throughput`` from the repository root."""
