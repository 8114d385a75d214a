"""One adapter per portal API; each turns its error JSON into bulkport's error types."""
