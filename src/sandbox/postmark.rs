//! The postmark fake. (Not built yet.)
