"""groove_sc.pl."""
