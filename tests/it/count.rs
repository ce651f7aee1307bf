//! count tests
