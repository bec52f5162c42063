"""The sweep's trainings at the same time: on a local Dask cluster or Slurm jobs, recorded in DVC afterwards
(``python -m pipeline.sweep``)."""
