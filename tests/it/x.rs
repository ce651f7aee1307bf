//! x tests
