"""Stallbox journal package."""
