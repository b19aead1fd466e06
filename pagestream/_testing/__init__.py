"""Deterministic test documents (pages, drawings) with their ground truth, for tests and benchmarks."""
