"""Datasets and mini-batch loading over NumPy arrays (PyTorch's ``torch.utils.data`` names)."""

from .dataset import Dataset, TensorDataset, random_split  # noqa: F401
from .dataloader import DataLoader, default_collate  # noqa: F401
from .sampler import DistributedSampler, Sampler  # noqa: F401

__all__ = ["Dataset", "TensorDataset", "random_split", "DataLoader", "default_collate", "Sampler", "DistributedSampler"]
