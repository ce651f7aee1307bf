//! The threads fake. (Not built yet.)
