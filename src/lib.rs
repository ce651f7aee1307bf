//! Herald: one finished issue in, one rendering per channel out, delivered exactly once.
//!
//! - [`issue`] and [`render`] are pure: the issue model and each channel's rendering.
//! - [`channel`] holds the adapters (the deliver half), sharing one HTTP client.
//! - [`store`] is the source of truth: deliveries, attempts, renderings, recipient sends.
//! - [`jobs`] is the only module that knows apalis.
//! - [`sandbox`] holds the contract fakes and the SMTP sink used by tests and `--sandbox`.

pub mod bounces;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod http;
pub mod issue;
pub mod jobs;
pub mod metrics;
pub mod preview;
pub mod render;
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod telemetry;
