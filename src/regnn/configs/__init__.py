"""Built-in run configurations (YAML overrides of the defaults in :mod:`regnn.config`)."""
