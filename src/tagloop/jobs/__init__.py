"""Background jobs: the queue port and its adapters (local threads; Procrastinate later)."""
