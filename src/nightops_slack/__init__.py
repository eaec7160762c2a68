"""NightOps."""
