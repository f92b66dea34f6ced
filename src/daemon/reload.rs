//! What every daemon's configuration reload shares (SIGHUP, `spimux router
//! reload`, `spimux responder|client reload`): the result of one reload,
//! its counters for `spimux_config_reloads_total{result}`, and logging the
//! outcome. Each daemon decides what it can apply live.

use super::metrics::Sample;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A configuration file and the command-line overrides `O` that replace
/// its values (at start and at every reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource<O> {
    /// The TOML file.
    pub path: PathBuf,
    /// Command-line overrides.
    pub overrides: O,
}

impl<O> ConfigSource<O> {
    /// A reload of this file refused as `kind` for `why`: nothing applied.
    pub fn refuse(&self, kind: ReloadResult, why: impl std::fmt::Display) -> Refusal {
        (
            kind,
            format!("{}: {why}; nothing was applied", self.path.display()),
        )
    }

    /// Reads and parses the file; the error names it.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        read_toml(&self.path)
    }
}

/// Reads and parses a TOML file (not validated); the error names the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    toml::from_str(&text).map_err(|e| format!("{name}: {e}"))
}

/// How reloads ended, for `spimux_config_reloads_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// Something changed and was applied.
    Applied,
    /// The file equals the configuration in force.
    Unchanged,
    /// The file could not be read, parsed or validated.
    Invalid,
    /// The file changes something that needs a restart.
    NeedsRestart,
}

impl ReloadResult {
    /// All, in label order.
    pub const ALL: [ReloadResult; 4] = [
        ReloadResult::Applied,
        ReloadResult::Unchanged,
        ReloadResult::Invalid,
        ReloadResult::NeedsRestart,
    ];

    /// Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::Invalid => "invalid",
            ReloadResult::NeedsRestart => "needs_restart",
        }
    }
}

/// Reload counts by result.
#[derive(Debug, Default)]
pub struct ReloadStats {
    counts: [AtomicU64; 4],
}

impl ReloadStats {
    fn count(&self, r: ReloadResult) {
        if let Some(c) = self.counts.get(r as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reloads that ended with `r`.
    pub fn get(&self, r: ReloadResult) -> u64 {
        self.counts
            .get(r as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The `spimux_config_reloads_total` samples.
    pub fn samples(&self) -> Vec<Sample<'static>> {
        ReloadResult::ALL
            .iter()
            .map(|r| (vec![("result", r.label())], self.get(*r) as f64))
            .collect()
    }
}

/// Help text of `spimux_config_reloads_total`.
pub const HELP: &str =
    "Configuration reloads (SIGHUP or `spimux <daemon> reload`), by result: applied, \
     unchanged, invalid (unreadable or failing validation), needs_restart (refused whole).";

/// What a reload did: the tables it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// `applied` or `unchanged`.
    pub result: &'static str,
    /// Configuration tables whose values changed.
    pub changed: Vec<&'static str>,
}

impl Reloaded {
    /// `changed` was applied (an empty list: nothing to do).
    pub fn of(changed: Vec<&'static str>) -> Reloaded {
        Reloaded {
            result: applied_or_unchanged(&changed).label(),
            changed,
        }
    }
}

/// How an accepted reload is counted: `Unchanged` when nothing differed.
fn applied_or_unchanged(changed: &[&str]) -> ReloadResult {
    if changed.is_empty() {
        ReloadResult::Unchanged
    } else {
        ReloadResult::Applied
    }
}

/// A refused reload: why, and how it is counted.
pub type Refusal = (ReloadResult, String);

/// The source a reload reads; a daemon started without one refuses.
pub fn source<O>(s: &Option<ConfigSource<O>>) -> Result<&ConfigSource<O>, Refusal> {
    s.as_ref().ok_or((
        ReloadResult::Invalid,
        "started without a configuration file".into(),
    ))
}

/// Applies a changed `[log]` (validated with the file, so the directive parses).
pub fn apply_log(old: &super::log::LogConfig, new: &super::log::LogConfig) {
    if new != old {
        if let Err(e) = super::log::set_level(&new.level) {
            tracing::warn!(error = %e, "log level not changed");
        }
    }
}

/// Counts and logs one reload's outcome; the error is the reason as text.
pub fn finish(stats: &ReloadStats, outcome: Result<Reloaded, Refusal>) -> Result<Reloaded, String> {
    let result = match &outcome {
        Ok(r) => applied_or_unchanged(&r.changed),
        Err((r, _)) => *r,
    };
    stats.count(result);
    match outcome {
        Ok(r) => {
            tracing::info!(changed = ?r.changed, "configuration reloaded");
            Ok(r)
        }
        Err((_, why)) => {
            tracing::warn!(error = %why, "configuration reload refused; the configuration in force stays");
            Err(why)
        }
    }
}

/// The live-applicable tables among `(name, changed)`.
pub fn changed(tables: impl IntoIterator<Item = (&'static str, bool)>) -> Vec<&'static str> {
    tables
        .into_iter()
        .filter_map(|(t, c)| c.then_some(t))
        .collect()
}
