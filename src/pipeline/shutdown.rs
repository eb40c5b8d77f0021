//! The shutdown sequence, one deadline for all of it:
//! stop receivers (finish requests in flight) -> their senders drop, so each staged processor
//! sees its input close and flushes -> exporter queues close and drain -> at the deadline,
//! whatever is still running is aborted and its spans are counted as lost by their guards.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Running;

impl Running {
    pub async fn shutdown(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for (_, r) in &self.receivers {
            let _ = r.stop.send(true);
        }
        for (id, r) in self.receivers {
            for task in r.tasks {
                finish(&id.to_string(), "receiver", task, deadline).await;
            }
        }
        for (name, task) in self.stages {
            finish(&name, "processor", task, deadline).await;
        }
        for (id, task) in self.exporters {
            finish(&id.to_string(), "exporter", task, deadline).await;
        }
    }
}

/// Waits for `task` until the deadline, then aborts it.
async fn finish(name: &str, what: &str, mut task: JoinHandle<()>, deadline: Instant) {
    tokio::select! {
        _ = &mut task => {}
        _ = tokio::time::sleep_until(deadline) => {
            tracing::warn!(component = name, kind = what, "shutdown deadline reached, aborting");
            task.abort();
            let _ = task.await;
        }
    }
}
