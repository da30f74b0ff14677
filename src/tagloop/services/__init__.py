"""Use cases, built on storage and domain: datasets, training, predictions."""
