//! The local control socket every daemon serves (`spimux router show …`,
//! `spimux router reload`): a Unix stream socket, owner-only (mode 0600,
//! and the peer's uid must be root or the daemon's own), one JSON request
//! line in, one JSON answer out, then the connection closes.
//!
//! One connection is served at a time with short deadlines, so a client
//! that stalls holds the socket for at most [`IO_TIMEOUT`]; reading state
//! happens on this thread, never on a dataplane thread.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Read and write deadline per connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request line accepted.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// Longest path a Unix socket address holds (sun_path less its NUL).
const MAX_PATH: usize = 107;

/// Marks a daemon's default control socket path.
pub trait DefaultSocket {
    /// The path.
    const SOCKET: &'static str;
}

/// `[control]`: where the control socket is.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct ControlConfig<D: DefaultSocket> {
    /// Socket path; empty disables the socket.
    pub socket: String,
    #[serde(skip)]
    daemon: std::marker::PhantomData<D>,
}

impl<D: DefaultSocket> Default for ControlConfig<D> {
    fn default() -> Self {
        ControlConfig {
            socket: D::SOCKET.to_string(),
            daemon: std::marker::PhantomData,
        }
    }
}

impl<D: DefaultSocket> Clone for ControlConfig<D> {
    fn clone(&self) -> Self {
        ControlConfig {
            socket: self.socket.clone(),
            daemon: std::marker::PhantomData,
        }
    }
}

impl<D: DefaultSocket> PartialEq for ControlConfig<D> {
    fn eq(&self, o: &Self) -> bool {
        self.socket == o.socket
    }
}

impl<D: DefaultSocket> Eq for ControlConfig<D> {}

impl<D: DefaultSocket> ControlConfig<D> {
    /// Checks the path: absolute and short enough for a socket address.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_path(&self.socket).map_err(|why| ("control.socket", why))
    }
}

/// A socket path is empty (no socket), or absolute and short enough for a
/// Unix socket address.
pub fn check_path(socket: &str) -> Result<(), String> {
    if socket.is_empty() {
        return Ok(());
    }
    if !Path::new(socket).is_absolute() {
        return Err("must be an absolute path".into());
    }
    if socket.len() > MAX_PATH {
        return Err(format!("at most {MAX_PATH} bytes (a Unix socket address)"));
    }
    Ok(())
}

/// A request: a command and its named arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// E.g. `show translations`, `reload`.
    pub command: String,
    /// Filters and options, by name.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

/// The answer on the wire: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A bound control socket; dropping it removes the socket file.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Binds `path` owner-only. A stale socket file (nobody answers on it)
    /// is replaced; a live one means another daemon uses the path: refused.
    pub fn bind(path: &Path) -> std::io::Result<Server> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another daemon answers on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        // Until this chmod the socket has the umask's mode; the peer check
        // in `serve` refuses other users in that window too.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `cfg.socket` unless it is empty.
pub fn bind<D: DefaultSocket>(cfg: &ControlConfig<D>) -> std::io::Result<Option<Server>> {
    if cfg.socket.is_empty() {
        return Ok(None);
    }
    Server::bind(Path::new(&cfg.socket)).map(Some)
}

/// Serves requests until `shutdown` is set, answering each with `handle`.
pub fn serve(
    server: Server,
    shutdown: &AtomicBool,
    mut handle: impl FnMut(&Request) -> Result<serde_json::Value, String>,
) {
    let own = crate::io::sys::effective_uid();
    while !shutdown.load(Ordering::Relaxed) {
        match server.listener.accept() {
            Ok((s, _)) => {
                match crate::io::sys::peer_uid(&s) {
                    Ok(uid) if uid == 0 || uid == own => {}
                    Ok(uid) => {
                        tracing::warn!(uid, "control: refused a connection from another user");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control: peer credentials unavailable");
                        continue;
                    }
                }
                if let Err(e) = answer(s, &mut handle) {
                    tracing::debug!(error = %e, "control: connection ended early");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control: accept failed");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Reads one request line from `s` and writes the answer.
fn answer(
    s: UnixStream,
    handle: &mut impl FnMut(&Request) -> Result<serde_json::Value, String>,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&s).take(MAX_REQUEST_BYTES)).read_line(&mut line)?;
    let result = match serde_json::from_str::<Request>(line.trim_end()) {
        Ok(req) => handle(&req),
        Err(e) => Err(format!("bad request: {e}")),
    };
    let a = match result {
        Ok(data) => Answer {
            ok: true,
            data: Some(data),
            error: None,
        },
        Err(error) => Answer {
            ok: false,
            data: None,
            error: Some(error),
        },
    };
    let mut w = std::io::BufWriter::new(&s);
    serde_json::to_writer(&mut w, &a).map_err(std::io::Error::other)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// Sends `req` to the daemon listening on `path` and returns its data, or
/// its error (or why it could not be asked) as text.
pub fn request(path: &Path, req: &Request) -> Result<serde_json::Value, String> {
    let s = UnixStream::connect(path).map_err(|e| {
        format!(
            "control socket {}: {e} (is the daemon running, and are you root or its user?)",
            path.display()
        )
    })?;
    let wait = Some(Duration::from_secs(60));
    s.set_read_timeout(wait).map_err(|e| e.to_string())?;
    s.set_write_timeout(wait).map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    (&s).write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    let mut text = String::new();
    (&s).read_to_string(&mut text)
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let a: Answer = serde_json::from_str(text.trim_end())
        .map_err(|e| format!("control socket {}: bad answer: {e}", path.display()))?;
    match (a.ok, a.data, a.error) {
        (true, Some(d), _) => Ok(d),
        (true, None, _) => Ok(serde_json::Value::Null),
        (false, _, e) => Err(e.unwrap_or_else(|| "refused".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Sock;
    impl DefaultSocket for Sock {
        const SOCKET: &'static str = "/run/spimux/test.sock";
    }

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("spimux-ctl-{}-{name}.sock", std::process::id()))
    }

    #[test]
    fn request_and_answer_round_trip_owner_only() {
        let path = temp_path("rt");
        let server = Server::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            serve(server, &stop2, |r| match r.command.as_str() {
                "echo" => Ok(serde_json::json!({ "args": r.args })),
                other => Err(format!("unknown command {other:?}")),
            })
        });
        let mut req = Request {
            command: "echo".into(),
            ..Request::default()
        };
        req.args.insert("host".into(), "10.0.0.1".into());
        let got = request(&path, &req).unwrap();
        assert_eq!(got["args"]["host"], "10.0.0.1");
        let err = request(
            &path,
            &Request {
                command: "nope".into(),
                ..Request::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("unknown command"), "{err}");
        // Not JSON: answered with an error, the server keeps serving.
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"{not json\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.contains("bad request"), "{text}");
        assert!(request(&path, &req).is_ok());
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert!(!path.exists(), "the socket file goes with the server");
    }

    #[test]
    fn a_live_socket_is_not_taken_over_but_a_stale_one_is() {
        let path = temp_path("live");
        let first = Server::bind(&path).unwrap();
        let e = Server::bind(&path).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        drop(first);
        // A socket file nobody listens on any more (a daemon that was killed).
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let second = Server::bind(&path).unwrap();
        drop(second);
        assert!(!path.exists());
    }

    #[test]
    fn config_paths_are_checked() {
        let mut c = ControlConfig::<Sock>::default();
        assert_eq!(c.socket, "/run/spimux/test.sock");
        assert!(c.validate().is_ok());
        c.socket = "relative.sock".into();
        assert_eq!(c.validate().unwrap_err().0, "control.socket");
        c.socket = format!("/{}", "x".repeat(200));
        assert_eq!(c.validate().unwrap_err().0, "control.socket");
        c.socket.clear();
        assert!(c.validate().is_ok());
    }
}
