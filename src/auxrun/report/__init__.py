"""Results I/O and the comparison table."""
