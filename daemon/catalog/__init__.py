"""Stallbox catalog package."""
