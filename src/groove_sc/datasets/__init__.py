"""groove_sc.datasets."""
