"""Detection: small detector modules over the lake's tables, run by an engine, emitting alerts."""
