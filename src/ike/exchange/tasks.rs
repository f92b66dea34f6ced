//! Starting our own requests, one at a time (message-ID window 1).

use super::super::engine::Engine;
use super::super::sa::{ChildState, IkeSa, IkeState, Pending, Task};
use crate::wire::ike::{Delete, ExchangeType, Payload, ProtocolId};

impl Engine {
    /// Starts queued tasks while no request of ours is in flight.
    pub(crate) fn run_tasks(&mut self, now: u64, sa: &mut IkeSa) {
        while sa.inflight.is_none() {
            let Some(task) = sa.tasks.pop_front() else {
                return;
            };
            let usable = match task {
                Task::DeleteIke => matches!(sa.state, IkeState::Established | IkeState::Deleting),
                _ => sa.state == IkeState::Established,
            };
            if !usable {
                continue;
            }
            let _started = match task {
                Task::RekeyChild(spi) => self.start_child_rekey(now, sa, spi),
                Task::RekeyIke => self.start_ike_rekey(now, sa),
                Task::Dpd => self.request(now, sa, ExchangeType::INFORMATIONAL, &[], Pending::Dpd),
                Task::DeleteChildren(spis) => self.start_child_delete(now, sa, spis),
                Task::DeleteIke => {
                    let p = [Payload::Delete(Delete {
                        protocol: ProtocolId::IKE,
                        spi_size: 0,
                        spis: Vec::new(),
                    })];
                    sa.state = IkeState::Deleting;
                    self.request(now, sa, ExchangeType::INFORMATIONAL, &p, Pending::DeleteIke)
                }
            };
        }
    }

    fn start_child_delete(&mut self, now: u64, sa: &mut IkeSa, spis: Vec<u32>) -> bool {
        let spis: Vec<u32> = spis
            .into_iter()
            .filter(|s| sa.children.iter().any(|c| c.inbound_spi == *s))
            .collect();
        if spis.is_empty() {
            return false;
        }
        for s in &spis {
            if let Some(c) = sa.child(*s) {
                c.state = ChildState::Deleting;
            }
        }
        let p = [Payload::Delete(Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        })];
        self.request(
            now,
            sa,
            ExchangeType::INFORMATIONAL,
            &p,
            Pending::DeleteChildren(spis),
        )
    }
}
