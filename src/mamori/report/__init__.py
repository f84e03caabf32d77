"""Reports written from the stages' results (the patrol report; case reports come later)."""
