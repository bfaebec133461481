"""Data layer: the REACT on-disk layout (reader, validator), audio features, synthetic data."""
