"""Detection: small detector modules over the lake's tables, run by an engine, emitting alerts."""

from mamori.detect.allocator import release_promptly

release_promptly()  # before polars loads (see the module)
