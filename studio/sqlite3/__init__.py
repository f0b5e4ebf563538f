"""SQLite database engine that creates the database file's folder on first connection."""
