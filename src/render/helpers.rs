//! render::helpers
