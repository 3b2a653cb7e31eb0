"""A user's own restoration models, registered with pip_model through entry points (see pyproject.toml)."""
