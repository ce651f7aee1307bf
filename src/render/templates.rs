//! render::templates
