"""Stallbox device package."""
