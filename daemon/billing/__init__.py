"""Stallbox billing package."""
