//! Herald: one finished issue in, one rendering per channel out, delivered exactly once.
