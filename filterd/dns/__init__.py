"""filterd.dns."""
