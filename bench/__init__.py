"""Benchmarks, each runnable as `python -m bench.<name>`; they record numbers and assert nothing."""
