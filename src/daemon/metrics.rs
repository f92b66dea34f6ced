//! Prometheus text exposition and the `GET /metrics` endpoint.

pub use super::http::{Limits, Server};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Label pairs and value of one sample.
pub type Sample<'a> = (Vec<(&'a str, &'a str)>, f64);

/// Metric families being assembled for one scrape.
#[derive(Default)]
pub struct Families(Vec<MetricFamily>);

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name((*k).to_string());
            l.set_value((*v).to_string());
            l
        })
        .collect()
}

impl Families {
    fn family(&mut self, name: &str, help: &str, ty: MetricType, samples: Vec<Sample>) {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(ty);
        for (ls, v) in samples {
            let mut m = Metric::default();
            m.set_label(labels(&ls));
            if ty == MetricType::COUNTER {
                let mut c = Counter::default();
                c.set_value(v);
                m.set_counter(c);
            } else {
                let mut g = Gauge::default();
                g.set_value(v);
                m.set_gauge(g);
            }
            f.mut_metric().push(m);
        }
        self.0.push(f);
    }

    /// Adds a counter family.
    pub fn counter(&mut self, name: &str, help: &str, samples: Vec<Sample>) {
        self.family(name, help, MetricType::COUNTER, samples);
    }

    /// Adds a gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, samples: Vec<Sample>) {
        self.family(name, help, MetricType::GAUGE, samples);
    }

    /// Adds an unlabelled histogram from per-bucket (not cumulative) counts
    /// for the upper `bounds`, the count above the last bound, and the sum.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        bounds: &[f64],
        per_bucket: &[u64],
        above: u64,
        sum: f64,
    ) {
        let mut total = 0;
        let buckets = bounds
            .iter()
            .zip(per_bucket)
            .map(|(bound, n)| {
                total += n;
                let mut b = Bucket::default();
                b.set_upper_bound(*bound);
                b.set_cumulative_count(total);
                b
            })
            .collect();
        let mut h = Histogram::default();
        h.set_bucket(buckets);
        h.set_sample_count(total + above);
        h.set_sample_sum(sum);
        let mut m = Metric::default();
        m.set_histogram(h);
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(MetricType::HISTOGRAM);
        f.mut_metric().push(m);
        self.0.push(f);
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new().encode(&self.0, &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// One unlabelled sample.
pub fn one(v: u64) -> Vec<Sample<'static>> {
    vec![(vec![], v as f64)]
}

/// Adds `spimux_build_info` with the version and one daemon-specific label.
pub fn build_info(f: &mut Families, label: (&str, &str)) {
    f.gauge(
        "spimux_build_info",
        "Build and runtime facts.",
        vec![(vec![("version", env!("CARGO_PKG_VERSION")), label], 1.0)],
    );
}

/// A daemon's default metrics port on 127.0.0.1.
pub trait DefaultPort {
    /// The port.
    const PORT: u16;
}

/// The `[metrics]` section of every daemon's configuration; `P` names the
/// daemon's default port.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct MetricsConfig<P: DefaultPort> {
    /// Listen address for `GET /metrics`; empty disables the endpoint.
    pub listen: String,
    /// Open connections at most (1..=65536); a new one evicts the oldest.
    pub max_connections: usize,
    /// Per connection, from accept to the end of the answer, ms (1..=3600000).
    pub timeout_ms: u64,
    /// Largest request head, bytes (256..=1048576).
    pub max_request_bytes: usize,
    #[serde(skip)]
    port: std::marker::PhantomData<P>,
}

impl<P: DefaultPort> Default for MetricsConfig<P> {
    fn default() -> Self {
        MetricsConfig {
            listen: format!("127.0.0.1:{}", P::PORT),
            max_connections: 64,
            timeout_ms: 5000,
            max_request_bytes: 8192,
            port: std::marker::PhantomData,
        }
    }
}

impl<P: DefaultPort> Clone for MetricsConfig<P> {
    fn clone(&self) -> Self {
        MetricsConfig {
            listen: self.listen.clone(),
            port: std::marker::PhantomData,
            ..*self
        }
    }
}

impl<P: DefaultPort> PartialEq for MetricsConfig<P> {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.listen,
            self.max_connections,
            self.timeout_ms,
            self.max_request_bytes,
        ) == (
            &o.listen,
            o.max_connections,
            o.timeout_ms,
            o.max_request_bytes,
        )
    }
}

impl<P: DefaultPort> Eq for MetricsConfig<P> {}

impl<P: DefaultPort> MetricsConfig<P> {
    /// Checks every field; the error names it (`metrics.timeout_ms`) and says why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.listen.is_empty() {
            self.listen
                .parse::<std::net::SocketAddr>()
                .map_err(|e| ("metrics.listen", e.to_string()))?;
        }
        if !(1..=65536).contains(&self.max_connections) {
            return Err(("metrics.max_connections", "must be 1..=65536".into()));
        }
        if !(1..=3_600_000).contains(&self.timeout_ms) {
            return Err(("metrics.timeout_ms", "must be 1..=3600000".into()));
        }
        if !(256..=1 << 20).contains(&self.max_request_bytes) {
            return Err(("metrics.max_request_bytes", "must be 256..=1048576".into()));
        }
        Ok(())
    }

    /// The server's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            timeout: Duration::from_millis(self.timeout_ms),
            max_request_bytes: self.max_request_bytes,
        }
    }
}

/// Binds the metrics listener; `Ok(None)` when `listen` is empty (disabled).
pub fn bind<P: DefaultPort>(cfg: &MetricsConfig<P>) -> std::io::Result<Option<Server>> {
    if cfg.listen.is_empty() {
        return Ok(None);
    }
    Server::bind(&cfg.listen, cfg.limits())
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("metrics.listen {}: {e}", cfg.listen)))
}

/// Serves `/metrics` with `render` until `shutdown` is set (see [`Server`]).
pub fn serve(server: Server, shutdown: &AtomicBool, render: impl Fn() -> String) {
    server.serve(shutdown, render);
}
