//! `stop_keep`: not yet written (Keep issue).
