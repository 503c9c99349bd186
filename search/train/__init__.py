"""Training jobs: stage-1 candidates and mined negatives feeding the trainers of
``training/``, one module per trainer kind, and ``search mine`` (``mine``)."""
