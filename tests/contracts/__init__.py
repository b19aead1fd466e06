"""Reusable contract suites, subclassed per backend."""
