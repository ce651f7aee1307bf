//! Contract fakes of every network, an SMTP sink, and the `--sandbox` wiring.
//!
//! Each fake is an axum app on `127.0.0.1:0` that checks requests by the network's rules,
//! answers as the network does, keeps what it accepted, and follows a [`fault::FaultPlan`].

pub mod bluesky;
pub mod devto;
pub mod discord;
pub mod email_fakes;
pub mod fault;
pub mod ghost;
pub mod hashnode;
pub mod journal;
pub mod linkedin;
pub mod mastodon;
pub mod postmark;
pub mod run;
pub mod slack;
pub mod smtp;
pub mod substack;
pub mod telegram;
pub mod threads;
pub mod webhook;
pub mod wordpress;
pub mod wiring;
pub mod x;
