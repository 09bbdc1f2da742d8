"""A real local IOTile Cloud: FastAPI over SQLAlchemy (SQLite by default, PostgreSQL when asked)."""
