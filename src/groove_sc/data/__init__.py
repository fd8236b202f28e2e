"""groove_sc.data."""
