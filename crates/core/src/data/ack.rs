//! Acknowledgements back to a source that must know when its data is safe (the Kafka receiver
//! commits an offset only when every span of that message is done).
//!
//! An [`Ack`] travels with the spans of one source message, cloned into every copy and batch
//! that holds them; when the last clone drops (sent or failed by every exporter, counted as
//! dropped, or decided by a tail sampler), the completion runs once. A source that has to retry
//! a refused message disarms the first ack so the refused copies' drops complete nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

struct Inner {
    armed: AtomicBool,
    done: Box<dyn Fn() + Send + Sync>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.armed.load(Ordering::SeqCst) {
            (self.done)();
        }
    }
}

#[derive(Clone)]
pub struct Ack(Arc<Inner>);

impl Ack {
    pub fn new(done: impl Fn() + Send + Sync + 'static) -> Self {
        Ack(Arc::new(Inner {
            armed: AtomicBool::new(true),
            done: Box::new(done),
        }))
    }

    /// The completion will not run (the source retries with a new ack).
    pub fn disarm(&self) {
        self.0.armed.store(false, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn completes_once_when_the_last_clone_drops() {
        let n = Arc::new(AtomicUsize::new(0));
        let c = n.clone();
        let a = Ack::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let b = a.clone();
        drop(a);
        assert_eq!(n.load(Ordering::SeqCst), 0);
        drop(b);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let c = n.clone();
        let d = Ack::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        d.disarm();
        drop(d);
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
