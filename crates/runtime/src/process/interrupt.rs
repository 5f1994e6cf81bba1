//! Catching SIGINT, SIGTERM and SIGHUP while a launcher starts daemons, so that an interrupted
//! start stops what it started and removes its files instead of dying half-way.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::SigId;

/// The signal that ended a start early.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted by {}; everything this start made was stopped and removed", signal_name(*.signal))]
pub struct Interrupted {
    /// The signal number.
    pub signal: i32,
}

impl Interrupted {
    /// The conventional exit status: 128 + the signal number.
    pub fn exit_status(&self) -> u8 {
        (128 + self.signal).clamp(0, 255) as u8
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// While alive, SIGINT, SIGTERM and SIGHUP no longer end the process: they are recorded, and
/// [`InterruptGuard::check`] reports them. Dropping it removes our handlers (the signals are
/// then ignored until the process exits, as the `signal-hook` crate leaves them).
#[derive(Debug)]
pub struct InterruptGuard {
    caught: Arc<AtomicUsize>,
    ids: Vec<SigId>,
}

impl InterruptGuard {
    /// Installs the handlers.
    pub fn install() -> io::Result<InterruptGuard> {
        let caught = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            ids.push(signal_hook::flag::register_usize(
                signal,
                caught.clone(),
                signal as usize,
            )?);
        }
        Ok(InterruptGuard { caught, ids })
    }

    /// The first signal caught so far, if any.
    pub fn caught(&self) -> Option<i32> {
        match self.caught.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n as i32),
        }
    }

    /// `Err(Interrupted)` once a signal was caught.
    pub fn check(&self) -> Result<(), Interrupted> {
        match self.caught() {
            Some(signal) => Err(Interrupted { signal }),
            None => Ok(()),
        }
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_is_recorded_not_fatal() {
        let guard = InterruptGuard::install().unwrap();
        assert!(guard.check().is_ok());
        signal_hook::low_level::raise(SIGHUP).unwrap();
        let err = guard.check().unwrap_err();
        assert_eq!(err.signal, SIGHUP);
        assert_eq!(err.exit_status(), 129);
        assert!(err.to_string().contains("SIGHUP"));
    }
}
