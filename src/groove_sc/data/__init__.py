"""Data handling for unpaired modalities: scvi-tools fields, group-balanced sampling."""

from ._datamodule import GrooveDataModule, MultiModalDataset
from ._fields import GroupLabelsObsField, MuDataGroupLabelsField, encode_labels
from ._sampler import GroupBalancedSampler

__all__ = [
    "GroupBalancedSampler",
    "GroupLabelsObsField",
    "GrooveDataModule",
    "MuDataGroupLabelsField",
    "MultiModalDataset",
    "encode_labels",
]
