//! The store conformance suite (filled below).
