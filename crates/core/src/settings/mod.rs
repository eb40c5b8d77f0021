//! Settings several components share, parsed the same way everywhere: TLS (client and
//! server), the Kafka client, and the exporters' queue, retry and timeout.

pub mod client_tls;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod queue;
pub mod retry;
pub mod tls;
