"""Datasets: annotation tables, HDF5 shards, augmentation, the training Dataset and the synthetic generator."""
