//! `images`: being written (foundation issue).
