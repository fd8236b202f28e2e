"""groove_sc.metrics."""
