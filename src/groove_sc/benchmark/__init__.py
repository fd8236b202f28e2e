"""groove_sc.benchmark."""
