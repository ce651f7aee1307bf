//! The mastodon fake. (Not built yet.)
