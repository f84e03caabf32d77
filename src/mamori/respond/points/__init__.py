"""Enforcement points, one module each; importing this package registers them."""
