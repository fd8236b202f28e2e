"""Plots: what a coupling matches, and benchmark grids and sweeps (scanpy conventions).

Examples
--------
>>> import groove_sc as gs
>>> gs.pl.matching  # doctest: +ELLIPSIS
<function matching at ...>

"""

from ._benchmark import benchmark, write_figures
from ._matching import group_mass, matching, partner_spread

__all__ = ["benchmark", "group_mass", "matching", "partner_spread", "write_figures"]
