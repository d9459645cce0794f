"""Stallbox daemon package."""
