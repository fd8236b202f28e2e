"""groove_sc.module."""
