//! sandbox tests
