//! webhook tests
