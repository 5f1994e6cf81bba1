//! Loopback ports: a free one for a server to take ([`free_loopback_port`]) and waiting until a
//! server accepts connections on one ([`wait_for_port`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that nothing listens on at the moment of the call.
///
/// The port is found by binding port 0 and closing the socket again, so another process can
/// take it before the caller binds it; callers that spawn a server on it should retry with a
/// new port when the server reports the address in use.
pub fn free_loopback_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Why [`wait_for_port`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum PortWaitError<E: std::error::Error + 'static> {
    /// Nothing accepted a connection before the deadline.
    #[error("nothing accepted connections on {addr} within {timeout:?}")]
    Timeout {
        /// The address polled.
        addr: SocketAddr,
        /// How long it waited.
        timeout: Duration,
    },
    /// The `check` callback reported a failure (typically: the server exited).
    #[error(transparent)]
    Check(E),
}

/// Waits until `addr` accepts a TCP connection, polling every 2 ms for at most `timeout`.
///
/// Before each attempt `check` is called; an error from it ends the wait at once (use it to
/// notice that the process meant to listen has exited).
pub fn wait_for_port<E: std::error::Error + 'static>(
    addr: SocketAddr,
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<(), PortWaitError<E>> {
    let deadline = Instant::now() + timeout;
    loop {
        check().map_err(PortWaitError::Check)?;
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let attempt = left.clamp(Duration::from_millis(1), Duration::from_millis(200));
        if TcpStream::connect_timeout(&addr, attempt).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(PortWaitError::Timeout { addr, timeout });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_loopback_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn wait_for_port_sees_a_listener_and_times_out_without_one() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_port::<io::Error>(addr, Duration::from_secs(2), || Ok(())).unwrap();
        drop(listener);
        let started = Instant::now();
        let err = wait_for_port::<io::Error>(addr, Duration::from_millis(50), || Ok(()));
        assert!(matches!(err, Err(PortWaitError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(2));
        let err = wait_for_port(addr, Duration::from_secs(5), || {
            Err(io::Error::other("gone"))
        });
        assert!(matches!(err, Err(PortWaitError::Check(_))));
    }
}
