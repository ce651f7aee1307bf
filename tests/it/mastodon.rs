//! mastodon tests
