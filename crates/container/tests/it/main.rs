//! Integration tests of the container helper, through the binary against real podman and
//! Docker and a real registry: probe, run and images ([`containers`]); build, check, fetch,
//! update and cc ([`images`]); fetch's progress ([`progress`]); QEMU's own call shapes
//! ([`qemu_dropin`]); property tests of the parsers of untrusted input ([`engine_properties`]).
//! `clean`, which acts on every labelled container, is in the `exclusive` binary, run alone.

mod containers;
mod engine_properties;
mod images;
mod progress;
mod qemu_dropin;
