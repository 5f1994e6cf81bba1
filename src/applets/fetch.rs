//! `fetch`: not yet written (image lifecycle issue).
