//! The one answer and error type of every server's handlers, axum style: a handler returns
//! `Result<impl IntoResponse, HttpError>` ([`HttpResult`]) and leaves early with `?`.
//!
//! An [`HttpError`] is a status, a message and the form it is written in: plain text (one line,
//! `text/plain; charset=utf-8`, ending in a newline), the way serve, keepstore, keepproxy and
//! the git server answer; or Arvados' JSON error body (`{"errors": [message], "error_token":
//! "PID+HEX"}`, `application/json; charset=utf-8`, ending in a newline), the way the API server
//! answers. Extra headers (`WWW-Authenticate`, CORS) ride along. Protocol code keeps typed
//! errors of its own and converts them into an `HttpError` with `From`, so this is the one
//! error type that becomes an answer. [`text`], [`json`] and [`raw`] are the answers for
//! success.

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;

/// What a handler returns: an answer, or an [`HttpError`] that becomes one.
pub type HttpResult<T = Response<Body>> = Result<T, HttpError>;

/// How an [`HttpError`] is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorForm {
    /// One line of plain text.
    Text,
    /// Arvados' `{"errors": [message]}`.
    Json,
}

/// An error answer: a status, a message for the client and how it is written.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// The status.
    pub status: StatusCode,
    /// What the client reads.
    pub message: String,
    /// Plain text or JSON.
    pub form: ErrorForm,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpError {
    /// A plain-text error.
    pub fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            form: ErrorForm::Text,
            headers: Vec::new(),
        }
    }

    /// An error in Arvados' JSON form.
    pub fn json(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            form: ErrorForm::Json,
            ..HttpError::new(status, message)
        }
    }

    /// 400, plain text.
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401, plain text.
    pub fn unauthorized(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403, plain text.
    pub fn forbidden(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404, plain text.
    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, message)
    }

    /// 500, plain text.
    pub fn internal(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The same error with a header added to its answer.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> HttpError {
        self.headers.push((name, value));
        self
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for HttpError {}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response<Body> {
        let mut response = match self.form {
            ErrorForm::Text => text(self.status, self.message),
            ErrorForm::Json => json_line(
                self.status,
                &serde_json::json!({
                    "errors": [self.message],
                    "error_token": error_token(),
                }),
            ),
        };
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// A plain-text answer: `text/plain; charset=utf-8`, the body ending in a newline.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Arvados' `error_token`: this process and a random number, so that a client's report of an
/// error can be found in the server's log.
fn error_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{}+{random:x}", std::process::id())
}

/// An answer whose body is sent exactly as given, with `content_type` (Omaha's XML, bodies a
/// client compares byte for byte).
pub fn raw(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response<Body> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON answer as Arvados writes its answers: `application/json; charset=utf-8`, the body
/// ending in a newline.
pub fn json_line(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    raw(status, "application/json; charset=utf-8", text)
}

/// A JSON answer (`application/json`).
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    fn body_of(response: Response<Body>) -> (StatusCode, String, String) {
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(response.into_body().collect())
            .unwrap()
            .to_bytes();
        (status, kind, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[test]
    fn text_error_is_one_line_with_its_status() {
        let (status, kind, body) = body_of(HttpError::not_found("no such block").into_response());
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(kind, "text/plain; charset=utf-8");
        assert_eq!(body, "no such block\n");
    }

    #[test]
    fn json_error_is_arvados_errors_list() {
        let error = HttpError::json(StatusCode::UNPROCESSABLE_ENTITY, "bad filter");
        let (status, kind, body) = body_of(error.into_response());
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(kind, "application/json; charset=utf-8");
        assert!(body.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["errors"], serde_json::json!(["bad filter"]));
        let token = value["error_token"].as_str().unwrap();
        let (pid, random) = token.split_once('+').unwrap();
        assert_eq!(pid, std::process::id().to_string());
        assert!(u64::from_str_radix(random, 16).is_ok(), "{token}");
    }

    #[test]
    fn headers_ride_along() {
        let error = HttpError::unauthorized("token needed").with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"git\""),
        );
        let response = error.into_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Basic realm=\"git\""
        );
    }
}
