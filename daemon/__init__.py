"""Stallbox daemon: the appliance process behind the stall's till."""

__version__ = "0.1.0"
