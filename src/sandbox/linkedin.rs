//! The linkedin fake. (Not built yet.)
