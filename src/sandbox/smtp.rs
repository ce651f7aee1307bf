//! The smtp fake. (Not built yet.)
