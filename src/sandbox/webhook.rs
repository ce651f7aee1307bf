//! The webhook fake. (Not built yet.)
