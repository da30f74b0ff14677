"""Persistence: SQLAlchemy tables and repositories, Alembic migrations, the artifact store."""
