//! The substack fake. (Not built yet.)
