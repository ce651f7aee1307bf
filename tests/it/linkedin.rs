//! linkedin tests
