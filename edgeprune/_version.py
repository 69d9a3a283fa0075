"""The single source of edgeprune's version number."""

__version__ = "0.1.0"
