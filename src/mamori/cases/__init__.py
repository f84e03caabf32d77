"""Cases, evidence packages with chain of custody, and reports."""
