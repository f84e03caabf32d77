"""Threat intelligence: import indicators (STIX 2.1, MISP, plain lists), store them, match them.

Indicators are normalised at import (addresses canonical, names lower-case without the root dot,
URLs reduced to host + path) so that matching is a join, never a per-record parse of the feed.
"""
