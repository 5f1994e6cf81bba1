//! Prometheus metrics shared by the HTTP servers (`serve`, `keepstore`): requests by status
//! class, response bytes, and a request latency histogram, kept with `prometheus-client` and
//! exposed as OpenMetrics text (which Prometheus scrapes) on `GET /metrics`. A server may
//! register its own families in [`HttpMetrics::registry`] before it starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Response};
use axum::middleware::Next;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub code: &'static str,
}

/// The metrics of one HTTP server.
pub struct HttpMetrics {
    /// Everything exposed; servers add their own families before sharing it.
    pub registry: Registry,
    requests: Family<StatusLabels, Counter>,
    bytes: Counter,
    latency: Histogram,
}

impl HttpMetrics {
    /// New metrics, every name under `prefix` (e.g. `cibox_serve`).
    pub fn new(prefix: &str) -> Self {
        let mut registry = Registry::with_prefix(prefix);
        let requests = Family::<StatusLabels, Counter>::default();
        let bytes = Counter::default();
        // 100 µs .. ~3.3 s.
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "http_requests",
            "HTTP requests answered, by status class",
            requests.clone(),
        );
        registry.register(
            "http_response_bytes",
            "Bytes of response bodies sent (as announced by Content-Length)",
            bytes.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response headers",
            latency.clone(),
        );
        HttpMetrics {
            registry,
            requests,
            bytes,
            latency,
        }
    }

    /// Records one answered request.
    pub fn observe(&self, status: u16, bytes: Option<u64>, elapsed: Duration) {
        let code = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "1xx",
        };
        self.requests.get_or_create(&StatusLabels { code }).inc();
        if let Some(b) = bytes {
            self.bytes.inc_by(b);
        }
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The `GET /metrics` answer.
    pub fn response(&self) -> Response<Body> {
        let mut r = Response::new(Body::from(self.render()));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        r
    }
}

/// Middleware recording every request in `metrics`.
pub async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.observe(
        response.status().as_u16(),
        body_length(&response),
        started.elapsed(),
    );
    response
}

/// The length of a response's body when known: its `Content-Length`, else the body's exact
/// size.
pub fn body_length(response: &Response<Body>) -> Option<u64> {
    response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or_else(|| axum::body::HttpBody::size_hint(response.body()).exact())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = HttpMetrics::new("t");
        m.observe(200, Some(36), Duration::from_millis(1));
        m.observe(404, None, Duration::from_millis(2));
        m.observe(204, Some(4), Duration::from_micros(50));
        let text = m.render();
        assert!(
            text.contains("t_http_requests_total{code=\"2xx\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("t_http_requests_total{code=\"4xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("t_http_response_bytes_total 40"), "{text}");
        assert!(
            text.contains("t_http_request_duration_seconds_count 3"),
            "{text}"
        );
        assert!(
            text.contains("t_http_request_duration_seconds_bucket{le=\"0.0001\"} 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
