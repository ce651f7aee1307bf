//! The bluesky fake. (Not built yet.)
