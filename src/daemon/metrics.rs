//! Prometheus text exposition and the `GET /metrics` endpoint.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Binds the metrics listener; `Ok(None)` when `listen` is empty (disabled).
pub fn bind(listen: &str) -> std::io::Result<Option<tiny_http::Server>> {
    if listen.is_empty() {
        return Ok(None);
    }
    tiny_http::Server::http(listen)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("metrics.listen {listen}: {e}")))
}

/// Serves `/metrics` with `render` until `shutdown` is set.
pub fn serve(server: tiny_http::Server, shutdown: &AtomicBool, render: impl Fn() -> String) {
    let ctype =
        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4"[..]).ok();
    while !shutdown.load(Ordering::Relaxed) {
        let req = match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => continue,
        };
        let resp = if req.url() == "/metrics" && *req.method() == tiny_http::Method::Get {
            let mut r = tiny_http::Response::from_string(render());
            if let Some(h) = ctype.clone() {
                r.add_header(h);
            }
            r
        } else {
            tiny_http::Response::from_string("spimux: try /metrics\n").with_status_code(404)
        };
        let _ = req.respond(resp);
    }
}
