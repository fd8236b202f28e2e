"""groove_sc.pp."""
