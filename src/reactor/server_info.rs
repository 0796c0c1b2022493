//! What the server tells an application about itself ([`ServerInfo`]):
//! every worker's counters, the broker's channels, readiness and counters,
//! the per-address limits. One value per worker, lent to every step.

use super::per_ip::PerIp;
use super::Shared;
use crate::app::ServerInfo;
use crate::pubsub::{Broker, BrokerStats, BrokerTopology, PresenceEvents};
use crate::stats::{PerIpStats, WorkerStats};
use std::sync::Arc;

/// The server, as a worker sees it.
pub(crate) struct Server {
    pub(crate) all_stats: Arc<[Arc<WorkerStats>]>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) shared: Arc<Shared>,
}

impl Server {
    /// The per-address limits, over every worker.
    pub(crate) fn per_ip(&self) -> &PerIp {
        &self.shared.per_ip
    }
}

impl ServerInfo for Server {
    fn worker_stats(&self) -> &[Arc<WorkerStats>] {
        &self.all_stats
    }

    fn channels(&self) -> usize {
        self.broker.channels()
    }

    fn ready(&self) -> Result<(), &'static str> {
        self.broker.ready()
    }

    fn broker_stats(&self) -> Option<BrokerStats> {
        self.broker.stats()
    }

    fn presence_events(&self) -> PresenceEvents {
        self.broker.presence_events()
    }

    fn broker_topology(&self) -> Option<BrokerTopology> {
        self.broker.topology()
    }

    fn per_ip_stats(&self) -> PerIpStats {
        self.shared.per_ip.stats()
    }
}
