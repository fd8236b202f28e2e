"""groove_sc.model."""
