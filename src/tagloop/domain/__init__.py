"""Pure logic without I/O: records, formats, validation, models, metrics."""
