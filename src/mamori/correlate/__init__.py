"""Correlation: alerts become incidents by shared entities and time, ordered along the kill chain."""

from mamori.detect.allocator import release_promptly

release_promptly()  # the patrol command imports correlation first, before polars loads
