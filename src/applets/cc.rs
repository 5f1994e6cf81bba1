//! `cc`: not yet written (image lifecycle issue).
