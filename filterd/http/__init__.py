"""filterd.http."""
