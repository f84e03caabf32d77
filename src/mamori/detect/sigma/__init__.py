"""Sigma rules over the lake's log tables, compiled to vectorised expressions."""
