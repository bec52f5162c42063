"""Datasets: downloads, person crops, annotation tables, HDF5 shards, augmentation, the training Dataset and its
loader workers, and the synthetic generator."""
