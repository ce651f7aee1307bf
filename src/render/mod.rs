//! Rendering: issue + templates → what each channel receives. Pure and deterministic.

pub mod count;
pub mod engine;
pub mod facets;
pub mod helpers;
pub mod html;
pub mod prosemirror;
pub mod split;
pub mod templates;
pub mod types;

pub use types::*;
