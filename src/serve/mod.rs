//! The devserver behind the `serve` applet: not yet written.
