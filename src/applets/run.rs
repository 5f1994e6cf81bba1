//! `run`: being written (foundation issue).
