//! Bounces, complaints and `mailto:` unsubscribes that arrive after a mailing (issue 17), all
//! into one suppression list. [`policy`]: which reports suppress, and when.

pub mod policy;

pub use policy::{Kind, Policy, Report, Source};
