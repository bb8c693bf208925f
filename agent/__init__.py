"""Isotopes: mark your photos with secret data isotopes, and later test whether a model learned them."""

__version__ = "0.1.0"
