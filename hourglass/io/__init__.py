"""Files on disk: annotation and evaluation files, checkpoints, the MPII submission, and the one atomic writer."""
