"""Moved to filterd.state.db; this name stays only while branches move over (remove soon)."""

from filterd.state.db import DB_NAME, Migration, db_path, migrate, open_db, table_exists  # noqa: F401
