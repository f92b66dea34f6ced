//! Router daemon.
