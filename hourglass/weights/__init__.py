"""Where weights come from: a checkpoint path or MLflow URI (``source``), the official port's files, releases."""
