//! email tests
