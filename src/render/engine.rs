//! render::engine
