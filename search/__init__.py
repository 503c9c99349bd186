"""The application: config, pipeline, evaluation and the ``search`` CLI wire the others together."""
