//! The delivery store.
