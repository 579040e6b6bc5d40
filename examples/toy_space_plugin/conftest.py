"""Lets `pytest` import `toy_space_plugin` from this folder when the package is not installed."""
