//! `serve`: not yet written (devserver issue).
