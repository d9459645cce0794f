"""Stallbox sync package."""
