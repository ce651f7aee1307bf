//! bluesky tests
