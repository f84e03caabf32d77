"""Correlation: alerts become incidents by shared entities and time, ordered along the kill chain."""
