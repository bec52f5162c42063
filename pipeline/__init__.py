"""Thin DVC stage entry points over the ``hourglass`` library, and the Prefect flows."""
