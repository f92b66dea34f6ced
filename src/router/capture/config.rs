//! `[capture]`: the opt-in capture of dropped frames to a pcapng file.
//! Every field can change at runtime (`Capture::apply`).

use crate::nat::ConfigError;
use serde::{Deserialize, Serialize};

/// Most frames the writer's queue can be configured to hold (its slots are
/// allocated when capture is first turned on).
pub const MAX_QUEUE_LEN: u32 = 8192;

/// Most memory the queued frame copies may take (`queue_len` × `snap_len`).
pub const MAX_QUEUE_BYTES: u64 = 64 << 20;

/// Drop capture settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// pcapng file the dropped frames go to; empty = capture off.
    pub drops_file: String,
    /// Frames captured per second for the whole router, shared evenly by the
    /// receive threads (as `icmp.errors_per_sec` is).
    pub max_per_sec: u32,
    /// Frames that may be captured back to back before the rate applies.
    pub burst: u32,
    /// Bytes kept of each frame (the rest is cut; the original length is recorded).
    pub snap_len: u32,
    /// File size at which capture stops (counted as `file_full`, logged once).
    pub max_file_bytes: u64,
    /// Frames waiting for the writer thread; more are counted as `queue_full`.
    pub queue_len: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            drops_file: String::new(),
            max_per_sec: 100,
            burst: 100,
            snap_len: 256,
            max_file_bytes: 64 << 20,
            queue_len: 1024,
        }
    }
}

fn err(field: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        why: why.into(),
    }
}

impl CaptureConfig {
    /// True when a file is configured.
    pub fn enabled(&self) -> bool {
        !self.drops_file.is_empty()
    }

    /// Checks every field; the error names the dotted field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("capture.max_per_sec", self.max_per_sec),
            ("capture.burst", self.burst),
        ] {
            if !(1..=1_000_000).contains(&v) {
                return Err(err(field, "must be 1..=1000000"));
            }
        }
        if !(64..=65535).contains(&self.snap_len) {
            return Err(err("capture.snap_len", "must be 64..=65535"));
        }
        if self.max_file_bytes < 4096 {
            return Err(err("capture.max_file_bytes", "must be at least 4096"));
        }
        if !(1..=MAX_QUEUE_LEN).contains(&self.queue_len) {
            return Err(err(
                "capture.queue_len",
                format!("must be 1..={MAX_QUEUE_LEN}"),
            ));
        }
        if u64::from(self.queue_len) * u64::from(self.snap_len) > MAX_QUEUE_BYTES {
            return Err(err(
                "capture.queue_len",
                format!(
                    "queue_len × snap_len must be at most {} MiB",
                    MAX_QUEUE_BYTES >> 20
                ),
            ));
        }
        if self.drops_file.contains('\0') {
            return Err(err("capture.drops_file", "must not contain NUL"));
        }
        Ok(())
    }
}
