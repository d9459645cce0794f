"""Stallbox catalog package: products and the importers of shop exports."""
