"""pytest fixtures: s3 (see the module docstring of each fixture)."""
