//! clap types only.
