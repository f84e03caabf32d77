"""Sharing with partners: STIX 2.1, TAXII 2.1 server and client, TLP policy."""
