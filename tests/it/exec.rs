//! exec tests
