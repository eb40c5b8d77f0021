//! State that outlives a reload: a processor whose config did not change finds the live state
//! of its predecessor here (held weakly, so state of removed processors goes away with them).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

struct Entry {
    /// The config the state was made for, compared with `PartialEq` on reuse.
    config: Box<dyn Any + Send + Sync>,
    value: Weak<dyn Any + Send + Sync>,
}

#[derive(Default)]
pub struct StateRegistry {
    entries: Mutex<HashMap<String, Entry>>,
}

impl StateRegistry {
    /// The live state stored under `key` for an equal `config` (the component's), or a new one
    /// from `make`, stored for the next reload.
    pub fn reuse_or_insert<C, T>(
        &self,
        key: &str,
        config: C,
        make: impl FnOnce() -> T,
    ) -> (Arc<T>, bool)
    where
        C: PartialEq + Send + Sync + 'static,
        T: Any + Send + Sync,
    {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get(key) {
            if e.config.downcast_ref::<C>() == Some(&config) {
                if let Some(v) = e.value.upgrade().and_then(|v| v.downcast::<T>().ok()) {
                    return (v, true);
                }
            }
        }
        let value = Arc::new(make());
        let any: Arc<dyn Any + Send + Sync> = value.clone();
        entries.insert(
            key.to_string(),
            Entry {
                config: Box::new(config),
                value: Arc::downgrade(&any),
            },
        );
        (value, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_only_live_state_with_the_same_fingerprint() {
        let r = StateRegistry::default();
        let (a, reused) = r.reuse_or_insert("p/x", "cfg1", || 1u32);
        assert!(!reused);
        let (b, reused) = r.reuse_or_insert("p/x", "cfg1", || 2u32);
        assert!(reused && Arc::ptr_eq(&a, &b));
        let (c, reused) = r.reuse_or_insert("p/x", "cfg2", || 3u32);
        assert!(!reused);
        assert_eq!(*c, 3);
        drop((a, b, c));
        let (d, reused) = r.reuse_or_insert("p/x", "cfg2", || 4u32);
        assert!(!reused, "state whose owners are gone is not revived");
        assert_eq!(*d, 4);
    }
}
