//! How the API server answers, on the wire: [`ApiError`], the error every resource method
//! returns, which becomes the shared [`HttpError`] in Arvados' JSON form
//! (`{"errors": [...], "error_token": ...}` with a 4xx/5xx status), and the largest request
//! body accepted ([`MAX_BODY`]). Answers themselves are `cibox_runtime::response::json_line`.

use axum::http::StatusCode;
use cibox_runtime::response::HttpError;

/// Largest request body accepted (64 MiB, as nginx in front of the real server allows).
pub const MAX_BODY: usize = 64 << 20;

/// An error answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The one-line reason, sent as `errors[0]`.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 422: the request is well-formed HTTP but its content is wrong.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(422, message)
    }

    /// 500 for a failure of the server itself (the state file cannot be written).
    pub fn internal(e: anyhow::Error) -> ApiError {
        ApiError::new(500, format!("{e:#}"))
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> HttpError {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpError::json(status, e.message)
    }
}
