//! `check`: not yet written (image lifecycle issue).
