"""What the processes share, with one owner.

The daemon, the admin page, the list updater, the sync job and the bypass monitor
meet in files and in one SQLite database. Every piece of that shared state is
read and written through a module of this package, so each has one codec, one
schema and one place to fix:

- `db`: the database file, WAL connections, per-module migrations.
- `atomic`: the one atomic file write (temp file, fsync, rename, fsync dir).
- `hours`: the hour key of the `counts` table.
- `events`: the event log writer and its schema; `eventquery`: the read queries
  the admin page, sync and the CLI need.
- `reviews`: the review queue fed by the block page.

Modules are imported by their own names (`from filterd.state.events import
EventLog`); this file re-exports nothing, so adding a module never conflicts.
Only this package issues SQL against the shared tables (docs/dev/ARCHITECTURE.md).
"""
