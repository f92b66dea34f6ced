//! Interface facts (index, MAC, MTU) via pnet's interface list.

use crate::wire::ethernet::Mac;
use std::io;

/// What the router needs to know about a data interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceInfo {
    /// Kernel name.
    pub name: String,
    /// ifindex.
    pub index: u32,
    /// Hardware address.
    pub mac: Mac,
    /// Interface is administratively up.
    pub up: bool,
}

/// Looks up `name`; a clear error when it does not exist or has no MAC.
pub fn lookup(name: &str) -> io::Result<IfaceInfo> {
    let i = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {name:?} not found"),
            )
        })?;
    let mac = i
        .mac
        .map(|m| Mac([m.0, m.1, m.2, m.3, m.4, m.5]))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface {name:?} has no MAC address"),
            )
        })?;
    Ok(IfaceInfo {
        name: i.name.clone(),
        index: i.index,
        mac,
        up: i.is_up(),
    })
}
