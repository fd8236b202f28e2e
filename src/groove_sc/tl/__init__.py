"""groove_sc.tl."""
