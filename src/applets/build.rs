//! `build`: not yet written (image lifecycle issue).
