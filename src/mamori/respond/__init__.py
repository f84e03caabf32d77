"""Respond within rules of engagement: decisions, the guard, enforcement points, audit."""
