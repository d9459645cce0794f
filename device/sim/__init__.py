"""Stallbox sim package."""
