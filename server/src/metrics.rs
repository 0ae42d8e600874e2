//! Prometheus metrics served on `/metrics`: requests by route and status, request latency by
//! route, and calls to the signer by RPC and outcome.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignerLabels {
    rpc: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BridgeLabels {
    action: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    client: &'static str,
    major: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

struct Inner {
    cache: [prometheus_client::metrics::gauge::Gauge; 4],
    bridge: Family<BridgeLabels, Counter>,
    bridge_states: Family<StateLabels, prometheus_client::metrics::gauge::Gauge>,
    bridge_lease: prometheus_client::metrics::gauge::Gauge,
    bridge_drifted: prometheus_client::metrics::gauge::Gauge,
    bridge_expired: prometheus_client::metrics::gauge::Gauge,
    dct_reads: Family<ClientLabels, Counter>,
    roles_expired: prometheus_client::metrics::gauge::Gauge,
    roles_expiring: prometheus_client::metrics::gauge::Gauge,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    signer: Family<SignerLabels, Counter>,
    signer_up: Family<EndpointLabels, prometheus_client::metrics::gauge::Gauge>,
}

#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("trustbridge");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let signer = Family::<SignerLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "signer_calls",
            "gRPC calls to the signer by RPC and outcome",
            signer.clone(),
        );
        let signer_up =
            Family::<EndpointLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "signer_up",
            "Whether each signer endpoint (trust_service) answered its last call or health check",
            signer_up.clone(),
        );
        let cache: [prometheus_client::metrics::gauge::Gauge; 4] = Default::default();
        for (g, (name, help)) in cache.iter().zip([
            ("cache_bytes", "Bytes held by cached repository views"),
            (
                "cache_budget_bytes",
                "The budget for cached repository views (trustbridge.cache.max_mib)",
            ),
            ("cache_views", "Repository views held in memory"),
            (
                "gun_locks",
                "Per-repository writer locks held (dropped when idle)",
            ),
        ]) {
            registry.register(name, help, g.clone());
        }
        let bridge = Family::<BridgeLabels, Counter>::default();
        registry.register(
            "bridge_jobs",
            "Cosign mirror job deliveries by action (sign, revoke) and outcome (mirrored, failed)",
            bridge.clone(),
        );
        let bridge_states =
            Family::<StateLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "bridge_jobs_by_state",
            "Cosign mirror jobs by state (pending, failed: still retried; dead: refused or gave up; not-configured: registry not allowed; mirrored)",
            bridge_states.clone(),
        );
        let bridge_drifted = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "bridge_drifted_tags",
            "Tags whose registry tag points elsewhere than the digest DCT trusts (last reconcile)",
            bridge_drifted.clone(),
        );
        let bridge_expired = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "bridge_expired_tags",
            "Mirrored tags whose notary role has expired (DCT clients refuse them; last reconcile)",
            bridge_expired.clone(),
        );
        let bridge_lease = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "bridge_lease",
            "Whether this replica runs the Cosign bridge worker now (1) or another one does (0)",
            bridge_lease.clone(),
        );
        let dct_reads = Family::<ClientLabels, Counter>::default();
        registry.register(
            "dct_reads",
            "DCT trust data reads by client kind (docker, go: the notary CLI or another Go client, trustbridge, other) and major version",
            dct_reads.clone(),
        );
        let roles_expired = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "dct_roles_expired",
            "root, targets and delegation files already expired (the server cannot renew them)",
            roles_expired.clone(),
        );
        let roles_expiring = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "dct_roles_expiring",
            "root, targets and delegation files that expire within trustbridge.migration.horizon_days",
            roles_expiring.clone(),
        );
        Metrics(Arc::new(Inner {
            cache,
            dct_reads,
            roles_expired,
            roles_expiring,
            bridge,
            bridge_states,
            bridge_lease,
            bridge_drifted,
            bridge_expired,
            registry,
            requests,
            latency,
            signer,
            signer_up,
        }))
    }

    pub fn request(&self, route: &'static str, method: &str, status: u16, seconds: f64) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                route,
                method: method.to_string(),
                status,
            })
            .inc();
        self.0
            .latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    pub fn signer_up(&self, endpoint: &str, up: bool) {
        self.0
            .signer_up
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_string(),
            })
            .set(i64::from(up));
    }

    pub fn signer_call(&self, rpc: &str, ok: bool) {
        self.0
            .signer
            .get_or_create(&SignerLabels {
                rpc: rpc.to_string(),
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    pub fn bridge_job(&self, action: &str, ok: bool) {
        self.0
            .bridge
            .get_or_create(&BridgeLabels {
                action: action.to_string(),
                outcome: if ok { "mirrored" } else { "failed" },
            })
            .inc();
    }

    /// The job counts per state, as the worker last read them.
    pub fn bridge_states(&self, counts: &[(crate::storage::JobState, i64)]) {
        for state in crate::storage::JobState::GAUGED {
            let n = counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.0
                .bridge_states
                .get_or_create(&StateLabels {
                    state: state.as_str().into(),
                })
                .set(n);
        }
    }

    /// The reconciler's counts: drifted tags, tags of expired roles.
    pub fn bridge_checks(&self, drifted: i64, expired: i64) {
        self.0.bridge_drifted.set(drifted);
        self.0.bridge_expired.set(expired);
    }

    pub fn dct_read(&self, client: &'static str, major: &str) {
        self.0
            .dct_reads
            .get_or_create(&ClientLabels {
                client,
                major: major.to_string(),
            })
            .inc();
    }

    /// The expiry watchdog's counts.
    pub fn roles_expiry(&self, expired: i64, expiring: i64) {
        self.0.roles_expired.set(expired);
        self.0.roles_expiring.set(expiring);
    }

    pub fn bridge_lease(&self, held: bool) {
        self.0.bridge_lease.set(held.into());
    }

    /// The repository cache's (bytes, budget, views, locks) now.
    pub fn cache(&self, usage: (u64, u64, usize, usize)) {
        let (bytes, budget, views, locks) = usage;
        for (g, v) in
            self.0
                .cache
                .iter()
                .zip([bytes as i64, budget as i64, views as i64, locks as i64])
        {
            g.set(v);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }
}
