"""filterd.sync."""
