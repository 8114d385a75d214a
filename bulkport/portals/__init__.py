"""One package per portal API, each registered in :mod:`bulkport.portals.registry`."""
