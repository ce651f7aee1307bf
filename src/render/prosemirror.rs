//! render::prosemirror
