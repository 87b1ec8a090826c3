"""Parley: a verifiable hotline for parties who do not trust each other."""

__version__ = "0.1.0"
