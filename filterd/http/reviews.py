"""Moved to filterd.state.reviews; this name stays only while branches move over (remove soon)."""

from filterd.state.reviews import (  # noqa: F401
    MAX_FIELD,
    MAX_MESSAGE,
    RateLimited,
    ReviewError,
    ReviewRequest,
    ReviewStore,
    clean_message,
)
