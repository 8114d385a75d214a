"""bulkport: move, mirror and clean up open-data portal catalogs at high speed."""

__version__ = "0.1.0"
