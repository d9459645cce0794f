"""Stallbox sales package."""
