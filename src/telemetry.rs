//! tracing setup.
