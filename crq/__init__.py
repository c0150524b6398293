"""Change requests (CRQ): installations and planned work."""
