//! pnet datalink backend (the product card's portable choice): one
//! poll + recvfrom per received frame and one sendto per sent frame.
//! Receive channels join the fanout group; transmit channels are separate
//! pnet channels whose receive half is never read, so they do not join it.

use super::offload::Offload;
use super::{Backend, FrameRx, FrameTx, RxBatch, RxFlags, MAX_FRAME};
use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender, FanoutOption, FanoutType};
use std::io;
use std::time::Duration;

/// The pnet backend.
pub struct Pnet;

fn iface(name: &str) -> io::Result<pnet_datalink::NetworkInterface> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {name:?} not found"),
            )
        })
}

fn config(fanout: Option<u16>) -> Config {
    Config {
        read_buffer_size: MAX_FRAME + 1,
        write_buffer_size: MAX_FRAME,
        read_timeout: Some(Duration::from_millis(50)),
        promiscuous: false,
        linux_fanout: fanout.map(|g| FanoutOption {
            group_id: g,
            fanout_type: FanoutType::HASH,
            defrag: false,
            rollover: false,
        }),
        ..Config::default()
    }
}

fn open(
    name: &str,
    fanout: Option<u16>,
) -> io::Result<(Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>)> {
    match pnet_datalink::channel(&iface(name)?, config(fanout))? {
        Channel::Ethernet(tx, rx) => Ok((tx, rx)),
        _ => Err(io::Error::other("pnet returned a non-Ethernet channel")),
    }
}

impl Backend for Pnet {
    fn open_rx(&self, ifname: &str, group: u16) -> io::Result<Box<dyn FrameRx>> {
        let (_tx, rx) = open(ifname, Some(group))?;
        Ok(Box::new(PnetRx { rx }))
    }

    fn open_tx(&self, ifname: &str) -> io::Result<Box<dyn FrameTx>> {
        // A pnet channel always receives too; a tiny never-read socket buffer keeps the cost low.
        let (tx, _rx) = open(ifname, None)?;
        Ok(Box::new(PnetTx { tx }))
    }

    fn name(&self) -> &'static str {
        "pnet"
    }

    fn carries_offloads(&self) -> bool {
        false
    }
}

struct PnetRx {
    rx: Box<dyn DataLinkReceiver>,
}

impl FrameRx for PnetRx {
    fn recv_batch(&mut self, batch: &mut RxBatch, _timeout_ms: i32) -> io::Result<usize> {
        let (bufs, lens, flags) = batch.parts_mut();
        let (Some(buf), Some(len), Some(flag)) =
            (bufs.first_mut(), lens.first_mut(), flags.first_mut())
        else {
            return Ok(0);
        };
        match self.rx.next() {
            Ok(frame) => {
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                *len = n;
                // The read buffer is one byte larger than MAX_FRAME: filling it means the frame was cut.
                *flag = RxFlags {
                    truncated: frame.len() > MAX_FRAME,
                    ..RxFlags::default()
                };
                batch.set_len(1);
                Ok(1)
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                batch.set_len(0);
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }
}

struct PnetTx {
    tx: Box<dyn DataLinkSender>,
}

impl FrameTx for PnetTx {
    fn send_batch(&mut self, frames: &[(&[u8], Offload)]) -> io::Result<usize> {
        let mut sent = 0;
        for (f, _) in frames {
            match self.tx.send_to(f, None) {
                Some(Ok(())) => sent += 1,
                Some(Err(e)) if sent == 0 => return Err(e),
                _ => break,
            }
        }
        Ok(sent)
    }
}
