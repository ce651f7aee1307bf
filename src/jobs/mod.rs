//! All apalis wiring.
