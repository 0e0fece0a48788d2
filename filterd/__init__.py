"""filterd: an age-tiered DNS and HTTP content filter for school networks."""

__version__ = "0.1.0"
