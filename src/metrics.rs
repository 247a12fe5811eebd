//! Prometheus metrics (OpenMetrics text at `/metrics`). One process-wide registry: the domain
//! records what happened (a refresh, a delivery) without carrying a handle around, the way the
//! `tracing` facade works. Labels are bounded sets (route patterns, plugin ids, outcomes):
//! never tenant ids, paths or tokens.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginOutcome {
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookOutcome {
    webhook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    plugin: String,
    status: String,
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    refreshes: Family<PluginOutcome, Counter>,
    links_created: Family<PluginLabel, Counter>,
    connects: Family<PluginOutcome, Counter>,
    webhook_deliveries: Family<WebhookOutcome, Counter>,
    connections: Family<StatusLabels, Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("connect_appliance");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route pattern, method and status",
            http_requests.clone(),
        );
        // 0.5 ms .. ~8 s.
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 15))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route pattern and method",
            http_duration.clone(),
        );
        let refreshes = Family::<PluginOutcome, Counter>::default();
        registry.register(
            "refreshes",
            "Token refreshes by plugin and outcome (refreshed, expired, transient_failure)",
            refreshes.clone(),
        );
        let links_created = Family::<PluginLabel, Counter>::default();
        registry.register(
            "links_created",
            "Connect links issued, by plugin",
            links_created.clone(),
        );
        let connects = Family::<PluginOutcome, Counter>::default();
        registry.register(
            "connect_completions",
            "Completed connect attempts by plugin and outcome (connected, failed): with links_created, the link conversion",
            connects.clone(),
        );
        let webhook_deliveries = Family::<WebhookOutcome, Counter>::default();
        registry.register(
            "webhook_delivery_attempts",
            "Webhook delivery attempts by webhook and outcome (delivered, retry, failed)",
            webhook_deliveries.clone(),
        );
        let connections = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "connections",
            "Stored connections by plugin and status (as of the scrape)",
            connections.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            refreshes,
            links_created,
            connects,
            webhook_deliveries,
            connections,
        }
    }

    pub fn http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let (method, route) = (method.to_string(), route.to_string());
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.clone(),
                route: route.clone(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { method, route })
            .observe(seconds);
    }

    pub fn refresh(&self, plugin: &str, outcome: &str) {
        self.refreshes
            .get_or_create(&plugin_outcome(plugin, outcome))
            .inc();
    }

    pub fn link_created(&self, plugin: &str) {
        self.links_created
            .get_or_create(&PluginLabel {
                plugin: plugin.to_string(),
            })
            .inc();
    }

    pub fn connect_completed(&self, plugin: &str, outcome: &str) {
        self.connects
            .get_or_create(&plugin_outcome(plugin, outcome))
            .inc();
    }

    pub fn webhook_attempt(&self, webhook: &str, outcome: &str) {
        self.webhook_deliveries
            .get_or_create(&WebhookOutcome {
                webhook: webhook.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The text exposition, with the connection gauges set from `counts` (plugin, status, n).
    pub fn render(&self, counts: &[(String, String, u64)]) -> String {
        self.connections.clear();
        for (plugin, status, n) in counts {
            self.connections
                .get_or_create(&StatusLabels {
                    plugin: plugin.clone(),
                    status: status.clone(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn plugin_outcome(plugin: &str, outcome: &str) -> PluginOutcome {
    PluginOutcome {
        plugin: plugin.to_string(),
        outcome: outcome.to_string(),
    }
}
