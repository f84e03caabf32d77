"""TAXII 2.1: the server mounted under /taxii2/, its storage, and what enters it."""
