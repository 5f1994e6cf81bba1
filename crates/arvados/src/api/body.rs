//! The API server's request body as a blocking reader ([`RequestBody`]), so a handler on a
//! blocking thread can stream-parse it, and only once it has decided to: nothing is read from
//! the connection before the first `read` (an unauthenticated request's body is never read),
//! at most [`MAX_BODY`] bytes are read in all, and a small bounded channel stands between the
//! connection and the parser, so the raw body is never held whole.

use std::io::{self, Read};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::answer::{ApiError, MAX_BODY};
use super::client_json::{Budget, ClientJsonError};

/// Why a body could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed (or the body stalled: the front end answers 408 then).
    #[error("cannot read the request body: {0}")]
    Read(String),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> ApiError {
        match e {
            BodyError::TooLarge(_) => ApiError::new(413, e.to_string()),
            BodyError::Read(_) => ApiError::new(400, e.to_string()),
        }
    }
}

/// The body of one request, read on demand.
pub struct RequestBody {
    /// The body and the runtime to read it on, until the first read.
    pending: Option<(Body, tokio::runtime::Handle)>,
    chunks: Option<mpsc::Receiver<Result<Bytes, BodyError>>>,
    current: Bytes,
    limit: usize,
}

impl RequestBody {
    /// `body`, to be read on the current runtime, at most `limit` bytes.
    pub fn new(body: Body, limit: usize) -> RequestBody {
        RequestBody {
            pending: tokio::runtime::Handle::try_current()
                .ok()
                .map(|handle| (body, handle)),
            chunks: None,
            current: Bytes::new(),
            limit,
        }
    }

    /// An empty body (for tests).
    pub fn empty() -> RequestBody {
        RequestBody {
            pending: None,
            chunks: None,
            current: Bytes::new(),
            limit: MAX_BODY,
        }
    }

    /// A body that is already here (for tests).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> RequestBody {
        RequestBody {
            current: bytes.into(),
            ..RequestBody::empty()
        }
    }

    /// The whole body as text (a form body), within the limit.
    pub fn read_text(&mut self) -> Result<String, ApiError> {
        let mut bytes = Vec::new();
        self.read_to_end(&mut bytes).map_err(body_error)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The body parsed as JSON as it arrives, within the request's `budget` of values (413
    /// past it); None when it is empty or only white space.
    pub fn read_json(&mut self, budget: &Budget) -> Result<Option<serde_json::Value>, ApiError> {
        let mut reader = io::BufReader::with_capacity(64 << 10, self);
        loop {
            let buf = io::BufRead::fill_buf(&mut reader).map_err(body_error)?;
            if buf.is_empty() {
                return Ok(None);
            }
            let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let whole = blank == buf.len();
            io::BufRead::consume(&mut reader, blank);
            if !whole {
                break;
            }
        }
        budget.parse_reader(reader).map(Some).map_err(|e| match e {
            ClientJsonError::Invalid(e) if e.is_io() => body_error(e.into()),
            ClientJsonError::Invalid(e) => {
                ApiError::new(400, format!("request body is not valid JSON: {e}"))
            }
            too_many @ ClientJsonError::TooManyValues(_) => too_many.into(),
        })
    }

    fn start(&mut self) {
        if let Some((body, handle)) = self.pending.take() {
            let (tx, rx) = mpsc::channel(2);
            handle.spawn(forward(body, self.limit, tx));
            self.chunks = Some(rx);
        }
    }
}

/// The error a failed read becomes.
fn body_error(e: io::Error) -> ApiError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<BodyError>())
    {
        Some(b) => b.clone().into(),
        None => BodyError::Read(e.to_string()).into(),
    }
}

/// Moves the body's pieces to the reader, stopping past `limit` or when the reader is gone.
async fn forward(body: Body, limit: usize, tx: mpsc::Sender<Result<Bytes, BodyError>>) {
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(piece) = stream.next().await {
        let item = match piece {
            Ok(bytes) => {
                total = total.saturating_add(bytes.len());
                if total > limit {
                    Err(BodyError::TooLarge(limit))
                } else {
                    Ok(bytes)
                }
            }
            Err(e) => Err(BodyError::Read(e.to_string())),
        };
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

impl Read for RequestBody {
    /// Blocking: call it on a blocking thread, never on the runtime.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.start();
        loop {
            if !self.current.is_empty() {
                let n = buf.len().min(self.current.len());
                buf[..n].copy_from_slice(&self.current.split_to(n));
                return Ok(n);
            }
            let Some(chunks) = &mut self.chunks else {
                return Ok(0);
            };
            match chunks.blocking_recv() {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_bodies_are_none_and_json_is_parsed() {
        assert!(RequestBody::empty()
            .read_json(&Budget::default())
            .unwrap()
            .is_none());
        assert!(RequestBody::from_bytes(" \n\t ")
            .read_json(&Budget::default())
            .unwrap()
            .is_none());
        let v = RequestBody::from_bytes("  {\"a\": [1]} \n")
            .read_json(&Budget::default())
            .unwrap();
        assert_eq!(v, Some(serde_json::json!({"a": [1]})));
        let e = RequestBody::from_bytes("{\"a\"")
            .read_json(&Budget::default())
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = RequestBody::from_bytes("{} x")
            .read_json(&Budget::default())
            .unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn bodies_past_the_limit_are_413() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut body = runtime.block_on(async {
            RequestBody::new(Body::from(format!("\"{}\"", "x".repeat(100))), 50)
        });
        let e = std::thread::spawn(move || body.read_json(&Budget::default()).unwrap_err())
            .join()
            .unwrap();
        assert_eq!(e.status, 413, "{}", e.message);
    }
}
