"""Versioned event models and their CloudEvents envelope."""
