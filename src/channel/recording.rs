//! A test adapter that records what it was asked to send and answers from a script.
