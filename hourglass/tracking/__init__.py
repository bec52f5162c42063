"""MLflow and DVC's metric files: ``store`` holds the small MLflow calls, ``runs`` the run tracker and logged model."""
