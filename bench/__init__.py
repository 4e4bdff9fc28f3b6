"""Benchmarks: run as modules, e.g. `python -m bench.dedup_quality`."""
