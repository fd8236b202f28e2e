"""groove_sc.datasets."""

from ._download import DatasetNotAvailableError, cache_dir  # the dataset cache
from ._real import (  # real co-assayed screens (download + conversion)
    frangieh_2021,
    papalexi_2021,
    read_frangieh_2021,
    read_papalexi_2021,
)
from ._simulate import simulate, simulate_sweep  # simulated weakly paired screens

__all__ = [
    "DatasetNotAvailableError",
    "cache_dir",
    "frangieh_2021",
    "papalexi_2021",
    "read_frangieh_2021",
    "read_papalexi_2021",
    "simulate",
    "simulate_sweep",
]
