"""HTTP side of the router: health, readiness, metrics."""
