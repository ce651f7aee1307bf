//! The x fake. (Not built yet.)
