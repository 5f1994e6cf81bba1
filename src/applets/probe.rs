//! `probe`: being written (foundation issue).
