"""The web door: FastAPI app (REST API, TAXII 2.1 under /taxii2/, console)."""
