//! substack tests
