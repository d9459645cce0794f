"""Stallbox web package."""
