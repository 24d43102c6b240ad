"""facemtl: multi-task facial analysis built around head pose."""

__version__ = "0.1.0"
