"""scvi-tools data fields for group (perturbation) labels shared across modalities."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from scvi.data.fields import BaseAnnDataField, MuDataWrapper

from .._labels import label_codes

UNLABELED_CODE = -1


def encode_labels(
    values: pd.Series, categories: np.ndarray, unlabeled_category: str | None = None
) -> np.ndarray:
    """Integer codes of ``values`` in ``categories``; missing/unlabeled/unknown values are ``-1``.

    Examples
    --------
    >>> encode_labels(pd.Series(["b", None, "a"]), np.array(["a", "b"])).tolist()
    [1, -1, 0]

    """
    s = pd.Series(values, copy=False)
    codes = label_codes(s, pd.Index(np.asarray(categories, dtype=str)))
    if unlabeled_category is not None:
        codes[(s.astype(str) == str(unlabeled_category)).to_numpy()] = UNLABELED_CODE
    return codes


class GroupLabelsObsField(BaseAnnDataField):
    """Categorical ``.obs`` field with a mapping fixed across modalities and unlabeled cells.

    Unlike :class:`scvi.data.fields.CategoricalObsField`, missing values (and an optional
    ``unlabeled_category``) are allowed and encoded as ``-1``, and the category mapping is given
    (the union over modalities), so that code ``k`` means the same perturbation everywhere.
    Codes are written to ``.obs[f"_scvi_{registry_key}"]``, as scvi-tools does for its fields.

    Examples
    --------
    >>> field = GroupLabelsObsField("labels_rna", "perturbation", np.array(["a", "b"]))

    """

    MAPPING_KEY = "categorical_mapping"
    ORIGINAL_KEY = "original_key"
    UNLABELED_KEY = "unlabeled_category"

    def __init__(
        self,
        registry_key: str,
        original_key: str,
        categories: np.ndarray | None = None,
        unlabeled_category: str | None = None,
    ) -> None:
        super().__init__()
        self._registry_key = registry_key
        self._original_key = original_key
        self._attr_key = f"_scvi_{registry_key}"
        self._categories = None if categories is None else np.asarray(categories, dtype=str)
        self._unlabeled = unlabeled_category

    @property
    def registry_key(self) -> str:
        return self._registry_key

    @property
    def attr_name(self) -> str:
        return "obs"

    @property
    def attr_key(self) -> str:
        return self._attr_key

    @property
    def is_empty(self) -> bool:
        return False

    def validate_field(self, adata: AnnData) -> None:
        if self._original_key not in adata.obs:
            raise KeyError(f"'{self._original_key}' not found in adata.obs.")

    def _write(self, adata: AnnData, categories: np.ndarray, unlabeled: str | None) -> None:
        adata.obs[self.attr_key] = encode_labels(
            adata.obs[self._original_key], categories, unlabeled
        )

    def register_field(self, adata: AnnData) -> dict:
        super().register_field(adata)
        if self._categories is None:
            raise ValueError("GroupLabelsObsField needs the shared categories to register.")
        self._write(adata, self._categories, self._unlabeled)
        return {
            self.MAPPING_KEY: self._categories,
            self.ORIGINAL_KEY: self._original_key,
            self.UNLABELED_KEY: "" if self._unlabeled is None else str(self._unlabeled),
        }

    def transfer_field(self, state_registry: dict, adata_target: AnnData, **kwargs) -> dict:
        mapping = np.asarray(state_registry[self.MAPPING_KEY], dtype=str)
        unlabeled = state_registry.get(self.UNLABELED_KEY) or None
        if self._original_key not in adata_target.obs:
            warnings.warn(
                f"'{self._original_key}' is not in the query's obs: its cells are treated as "
                f"unlabeled. Add obs['{self._original_key}'] (missing values for unlabeled "
                "cells) to use its labels.",
                UserWarning,
                stacklevel=3,
            )
            adata_target.obs[self.attr_key] = np.full(adata_target.n_obs, UNLABELED_CODE)
        else:
            self._write(adata_target, mapping, unlabeled)
        return {
            self.MAPPING_KEY: mapping,
            self.ORIGINAL_KEY: self._original_key,
            self.UNLABELED_KEY: state_registry.get(self.UNLABELED_KEY, ""),
        }

    def get_summary_stats(self, state_registry: dict) -> dict:
        return {f"n_{self.registry_key}": len(state_registry[self.MAPPING_KEY])}

    def view_state_registry(self, state_registry: dict):
        return None


MuDataGroupLabelsField = MuDataWrapper(GroupLabelsObsField)
