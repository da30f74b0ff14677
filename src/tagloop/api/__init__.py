"""HTTP front end (FastAPI)."""
