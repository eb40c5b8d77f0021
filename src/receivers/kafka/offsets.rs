//! Which offsets may be committed: per partition, the offsets handed to the pipelines and not yet
//! done. Kafka commits "the next offset to read", so the committable offset is the lowest pending
//! one (everything below it is done), or one past the last registered when nothing is pending.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Partition {
    pending: BTreeSet<i64>,
    /// One past the highest offset registered.
    next: i64,
    /// What was last committed.
    committed: i64,
}

#[derive(Default)]
pub struct Offsets {
    partitions: Mutex<HashMap<(String, i32), Partition>>,
}

impl Offsets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), Partition>> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, topic: &str, partition: i32, offset: i64) {
        let mut g = self.lock();
        let p = g
            .entry((topic.to_string(), partition))
            .or_insert_with(|| Partition {
                committed: offset,
                ..Default::default()
            });
        p.pending.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// A message is done. Unknown partitions (revoked meanwhile) are ignored.
    pub fn complete(&self, topic: &str, partition: i32, offset: i64) {
        if let Some(p) = self.lock().get_mut(&(topic.to_string(), partition)) {
            p.pending.remove(&offset);
        }
    }

    /// Offsets that advanced since the last call, as (topic, partition, next offset to read).
    pub fn committable(&self, only: Option<&[(String, i32)]>) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for ((t, part), p) in self.lock().iter_mut() {
            if only.is_some_and(|o| !o.iter().any(|(ot, op)| ot == t && op == part)) {
                continue;
            }
            let upto = p.pending.first().copied().unwrap_or(p.next);
            if upto > p.committed {
                p.committed = upto;
                out.push((t.clone(), *part, upto));
            }
        }
        out
    }

    /// Stops tracking partitions taken away by a rebalance.
    pub fn forget(&self, partitions: &[(String, i32)]) {
        let mut g = self.lock();
        for k in partitions {
            g.remove(k);
        }
    }

    pub fn pending(&self) -> usize {
        self.lock().values().map(|p| p.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_the_highest_contiguous_done_offset() {
        let o = Offsets::default();
        for off in 10..15 {
            o.register("t", 0, off);
        }
        assert!(o.committable(None).is_empty(), "nothing done yet");
        o.complete("t", 0, 11);
        o.complete("t", 0, 12);
        assert!(o.committable(None).is_empty(), "10 is still pending");
        o.complete("t", 0, 10);
        assert_eq!(o.committable(None), vec![("t".to_string(), 0, 13)]);
        o.complete("t", 0, 13);
        o.complete("t", 0, 14);
        assert_eq!(o.committable(None), vec![("t".to_string(), 0, 15)]);
        assert!(o.committable(None).is_empty(), "reported once");
        o.register("t", 1, 0);
        o.forget(&[("t".to_string(), 1)]);
        o.complete("t", 1, 0);
        assert_eq!(o.pending(), 0);
    }
}
