//! `keepstore`: not yet written (Keep issue).
