"""Training: the loop, optimiser and schedule, DDP, the fast path, resume fingerprints and ``train.init_from``."""
