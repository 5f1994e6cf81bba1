//! `clean`: being written (foundation issue).
