//! The devserver's metrics: the shared HTTP ones ([`cibox_runtime::metrics`]) plus update checks by
//! answer and events by result, all under `cibox_serve_`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use cibox_runtime::metrics::HttpMetrics;

/// Labels of the update-check counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    answer: &'static str,
}

/// Labels of the event counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Everything `serve` counts for `/metrics`.
pub struct ServeMetrics {
    /// The HTTP metrics (and the registry holding the rest).
    pub http: Arc<HttpMetrics>,
    checks: Family<AnswerLabels, Counter>,
    events: Family<ResultLabels, Counter>,
}

impl Default for ServeMetrics {
    fn default() -> Self {
        let mut http = HttpMetrics::new("cibox_serve");
        let checks = Family::<AnswerLabels, Counter>::default();
        let events = Family::<ResultLabels, Counter>::default();
        http.registry.register(
            "update_checks",
            "Update checks answered (one per app), by answer",
            checks.clone(),
        );
        http.registry.register(
            "events",
            "Events reported by clients, by result",
            events.clone(),
        );
        ServeMetrics {
            http: Arc::new(http),
            checks,
            events,
        }
    }
}

impl ServeMetrics {
    /// One app's update check answered with an update (`true`) or noupdate.
    pub fn check(&self, update: bool) {
        let answer = if update { "update" } else { "noupdate" };
        self.checks.get_or_create(&AnswerLabels { answer }).inc();
    }

    /// One event with update_engine's `eventresult`.
    pub fn event(&self, result: Option<i64>) {
        let result = match result {
            Some(0) => "error",
            Some(1) => "success",
            Some(2) => "success_reboot",
            Some(9) => "deferred",
            Some(_) => "other",
            None => "none",
        };
        self.events.get_or_create(&ResultLabels { result }).inc();
    }
}
