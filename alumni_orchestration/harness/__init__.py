"""What stands beside the product to run it end to end: the demo's helpers (ports)."""
