"""Stallbox printer package."""
