"""diffattn (placeholder package: API lands with its issue)."""
__all__: list[str] = []
__version__ = "0.1.0"
