//! Bounces, complaints and `mailto:` unsubscribes that arrive after a mailing (issue 17), all
//! into one suppression list:
//!
//! - [`policy`]: which reports suppress, and when (hard at once, soft after N in D days);
//! - [`verp`]: the per-message Return-Path `bounces+<token>@domain` that ties a bounce to its
//!   message;
//! - [`dsn`]: DSN (RFC 3464), ARF (RFC 5965) and `mailto:` unsubscribe parsing;
//! - [`matcher`]: a parsed report → the subscriber and mailing it is about;
//! - [`postmark`]: Postmark's bounce records (webhook and export);
//! - [`webhook`]: `POST /webhooks/postmark` on the daemon;
//! - [`imap`]: the bounce mailbox the daemon polls.

pub mod policy;
pub mod verp;
pub mod dsn;
pub mod imap;
pub mod intake;
pub mod webhook;
pub mod matcher;
pub mod postmark;

pub use policy::{Kind, Policy, Report, Source};
