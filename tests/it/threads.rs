//! threads tests
