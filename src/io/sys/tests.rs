//! Batches with refused messages in the middle, on real UDP sockets over
//! loopback: the kernel refuses port 0 (EINVAL) and the limited broadcast
//! address without SO_BROADCAST (EACCES); everything else must still go.

use super::*;
use crate::io::udp_gso::{sockaddr_in, GsoTx};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

fn receiver() -> (UdpSocket, SocketAddrV4) {
    let r = UdpSocket::bind("127.0.0.1:0").unwrap();
    r.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let std::net::SocketAddr::V4(a) = r.local_addr().unwrap() else {
        unreachable!()
    };
    (r, a)
}

/// Payloads of everything that arrives until the socket stays quiet.
fn drain(r: &UdpSocket) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = r.recv(&mut buf) {
        got.push(buf[..n].to_vec());
        if got.len() > 100 {
            break;
        }
    }
    got.sort();
    got
}

const PORT0: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
const BCAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 9);

fn plan(ok: SocketAddrV4) -> Vec<(Vec<u8>, SocketAddrV4)> {
    let d = |i: u8, len: usize| vec![i; len];
    vec![
        (d(1, 100), ok),
        (d(2, 100), ok),
        (d(3, 100), PORT0),
        (d(4, 100), PORT0),
        (d(5, 100), ok),
        (d(6, 50), BCAST),
        (d(7, 100), ok),
        (d(8, 100), ok),
    ]
}

fn expected(p: &[(Vec<u8>, SocketAddrV4)], ok: SocketAddrV4) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = p
        .iter()
        .filter(|(_, a)| *a == ok)
        .map(|(d, _)| d.clone())
        .collect();
    v.sort();
    v
}

fn failed(f: &SendFailures, k: SendFailure) -> u64 {
    let i = SendFailure::ALL.iter().position(|x| *x == k).unwrap();
    f.0[i]
}

#[test]
fn mmsg_batch_continues_past_refused_messages() {
    let (r, ok) = receiver();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = plan(ok);
    let mut tx = MmsgTx::<libc::sockaddr_in>::default();
    let sent = tx
        .send(
            s.as_raw_fd(),
            p.iter().map(|(d, a)| (&d[..], sockaddr_in(*a))),
        )
        .unwrap();
    assert_eq!(sent, 5);
    assert_eq!(drain(&r), expected(&p, ok));
    assert_eq!(failed(&tx.failures, SendFailure::Other), 2, "port 0");
    assert_eq!(failed(&tx.failures, SendFailure::Refused), 1, "broadcast");
}

#[test]
fn mmsg_batch_of_only_refused_messages_is_an_error() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut tx = MmsgTx::<libc::sockaddr_in>::default();
    let d = [0u8; 10];
    let r = tx.send(
        s.as_raw_fd(),
        [(&d[..], sockaddr_in(PORT0)), (&d[..], sockaddr_in(BCAST))].into_iter(),
    );
    assert!(r.is_err());
    assert_eq!(tx.failures.0.iter().sum::<u64>(), 2);
}

#[test]
fn gso_batch_continues_past_refused_trains() {
    let (r, ok) = receiver();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = plan(ok);
    let mut tx = GsoTx::default();
    let sent = tx
        .send(s.as_raw_fd(), p.iter().map(|(d, a)| (&d[..], *a)))
        .unwrap();
    assert_eq!(sent, 5);
    assert_eq!(drain(&r), expected(&p, ok));
    assert_eq!(tx.failures.0.iter().sum::<u64>(), 3, "{:?}", tx.failures);
}
