"""Stage 1 and what every stage shares: types, readers, encoders, the vector index, metrics."""
