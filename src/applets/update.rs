//! `update`: not yet written (image lifecycle issue).
