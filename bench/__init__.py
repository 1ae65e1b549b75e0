"""Benchmarks: each prints its figures next to its budgets. They are not timed unit tests."""
