"""pytest fixtures: learn (see the module docstring of each fixture)."""
