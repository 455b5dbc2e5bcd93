"""pytest fixtures: smtp (see the module docstring of each fixture)."""
