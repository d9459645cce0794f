"""Stallbox terminal package."""
