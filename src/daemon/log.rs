//! Logging for every daemon: text or JSON lines on stderr (journald and
//! ELK read either), a level that a configuration reload can change, and
//! [`warn_limited!`](crate::warn_limited) for warnings that outside traffic
//! can trigger, so a flood cannot turn into a flood of log lines.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Line format on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// `[log]`: the level, as an `EnvFilter` directive (`info`,
/// `spimux=debug,warn`…). `RUST_LOG`, when set, wins over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter directive.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

impl LogConfig {
    /// Checks the directive parses.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        EnvFilter::builder()
            .parse(&self.level)
            .map(|_| ())
            .map_err(|e| ("log.level", e.to_string()))
    }
}

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber (once; later calls do nothing) at `level`
/// unless `RUST_LOG` is set.
pub fn init(format: LogFormat, level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::builder().parse(v).ok())
        .or_else(|| EnvFilter::builder().parse(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(fmt.json().flatten_event(true))
            .try_init(),
    };
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Changes the level (configuration reload). With `RUST_LOG` set the
/// environment keeps precedence and this changes nothing.
pub fn set_level(level: &str) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(());
    }
    let f = EnvFilter::builder()
        .parse(level)
        .map_err(|e| format!("log.level: {e}"))?;
    match FILTER.get() {
        Some(h) => h.reload(f).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// Lets through at most [`Throttle::PER_WINDOW`] events per window of
/// [`Throttle::WINDOW_SECS`] seconds and counts the rest; one per call site.
pub struct Throttle {
    /// Window start (Unix seconds) in the high 32 bits, events in it below.
    state: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    /// Events let through per window.
    pub const PER_WINDOW: u32 = 10;
    /// Window length.
    pub const WINDOW_SECS: u32 = 10;

    /// A throttle with nothing seen yet.
    pub const fn new() -> Self {
        Throttle {
            state: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(events suppressed since the last one let through)` when this
    /// event may be logged at Unix second `now_s`; `None` when it is over
    /// the budget (counted).
    pub fn admit(&self, now_s: u32) -> Option<u64> {
        let window = now_s - now_s % Self::WINDOW_SECS;
        let next = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                let (start, n) = ((s >> 32) as u32, s as u32);
                if start != window {
                    Some(u64::from(window) << 32 | 1)
                } else if n < Self::PER_WINDOW {
                    Some(s + 1)
                } else {
                    None
                }
            });
        match next {
            Ok(_) => Some(self.suppressed.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// [`Throttle::admit`] at the wall-clock second.
    pub fn admit_now(&self) -> Option<u64> {
        let s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.admit(u32::try_from(s).unwrap_or(u32::MAX))
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

/// `tracing::warn!` for warnings outside traffic can cause: at most
/// [`Throttle::PER_WINDOW`] lines per call site per window, each saying how
/// many were suppressed before it (`suppressed` field).
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static THROTTLE: $crate::daemon::log::Throttle = $crate::daemon::log::Throttle::new();
        if let Some(suppressed) = THROTTLE.admit_now() {
            tracing::warn!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_a_window_s_budget_through_and_counts_the_rest() {
        let t = Throttle::new();
        for _ in 0..Throttle::PER_WINDOW {
            assert_eq!(t.admit(1000), Some(0));
        }
        assert_eq!(t.admit(1001), None);
        assert_eq!(t.admit(1009), None);
        // The next window reports the two it held back.
        assert_eq!(t.admit(1010), Some(2));
        assert_eq!(t.admit(1011), Some(0));
    }

    #[test]
    fn level_directives_are_checked() {
        assert!(LogConfig::default().validate().is_ok());
        let c = LogConfig {
            level: "spimux=debug,warn".into(),
        };
        assert!(c.validate().is_ok());
        let bad = LogConfig {
            level: "spimux=loud".into(),
        };
        assert_eq!(bad.validate().unwrap_err().0, "log.level");
    }
}
