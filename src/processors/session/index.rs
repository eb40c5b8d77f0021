//! The session index: which trace belongs to which session, and which sessions were kept.
//! Bounded: at most `max_sessions` sessions and `max_sessions * TRACES_PER_SESSION` trace
//! links, oldest first out, and every entry expires `ttl` after it was last seen.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::data::trace_map::TraceMap;

/// Trace links kept per session slot (a session is many traces; links only matter while the
/// trace can still be stamped or sampled, so they are bounded separately).
const TRACES_PER_SESSION: usize = 8;

pub type TraceKey = u128;

struct SessionState {
    expires: Instant,
    kept_until: Option<Instant>,
}

pub struct Inner {
    ttl: Duration,
    max_sessions: usize,
    sessions: HashMap<Arc<str>, SessionState>,
    session_order: VecDeque<(Arc<str>, Instant)>,
    traces: TraceMap<(Arc<str>, Instant)>,
    trace_order: VecDeque<TraceKey>,
}

pub struct SessionIndex {
    inner: Mutex<Inner>,
}

impl SessionIndex {
    pub fn new(ttl: Duration, max_sessions: usize) -> Self {
        SessionIndex {
            inner: Mutex::new(Inner {
                ttl,
                max_sessions: max_sessions.max(1),
                sessions: HashMap::new(),
                session_order: VecDeque::new(),
                traces: TraceMap::default(),
                trace_order: VecDeque::new(),
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session of a trace, when known and not expired.
    pub fn session_of(&self, trace: TraceKey, now: Instant) -> Option<Arc<str>> {
        self.lock().session_of(trace, now)
    }

    /// Whether a kept trace of this trace's session makes it kept too.
    pub fn session_kept(&self, trace: TraceKey, now: Instant) -> bool {
        let g = self.lock();
        let Some(s) = g.session_of(trace, now) else {
            return false;
        };
        g.sessions
            .get(&s)
            .and_then(|st| st.kept_until)
            .is_some_and(|until| until > now)
    }

    /// A trace of this session was kept: keep the session's traces for `ttl`.
    pub fn mark_kept(&self, trace: TraceKey, now: Instant) {
        let mut g = self.lock();
        let ttl = g.ttl;
        if let Some(s) = g.session_of(trace, now) {
            if let Some(st) = g.sessions.get_mut(&s) {
                st.kept_until = Some(now + ttl);
            }
        }
    }

    pub fn sessions(&self) -> usize {
        self.lock().sessions.len()
    }
}

impl Inner {
    pub fn session_of(&self, trace: TraceKey, now: Instant) -> Option<Arc<str>> {
        self.traces
            .get(&trace)
            .filter(|(_, exp)| *exp > now)
            .map(|(s, _)| s.clone())
    }

    /// Links a trace to a session (both refreshed for `ttl`).
    pub fn observe(&mut self, trace: TraceKey, session: &str, now: Instant) {
        let expires = now + self.ttl;
        let key: Arc<str> = match self.sessions.get_key_value(session) {
            Some((k, _)) => k.clone(),
            None => Arc::from(session),
        };
        match self.sessions.get_mut(&key) {
            Some(st) => st.expires = expires,
            None => {
                self.sessions.insert(
                    key.clone(),
                    SessionState {
                        expires,
                        kept_until: None,
                    },
                );
            }
        }
        self.session_order.push_back((key.clone(), expires));
        if self.traces.insert(trace, (key, expires)).is_none() {
            self.trace_order.push_back(trace);
        }
        self.evict(now);
    }

    fn evict(&mut self, now: Instant) {
        // Sessions: drop expired ones and, past the bound, the least recently seen.
        while let Some((key, seen)) = self.session_order.front().cloned() {
            let current = self.sessions.get(&key).map(|s| s.expires);
            let stale_entry = current != Some(seen);
            let expired = current.is_some_and(|e| e <= now);
            let over = self.sessions.len() > self.max_sessions;
            if stale_entry {
                self.session_order.pop_front();
            } else if expired || over {
                self.session_order.pop_front();
                self.sessions.remove(&key);
            } else {
                break;
            }
        }
        let max_traces = self.max_sessions * TRACES_PER_SESSION;
        while let Some(&t) = self.trace_order.front() {
            let expired = self.traces.get(&t).is_none_or(|(_, e)| *e <= now);
            if expired || self.traces.len() > max_traces {
                self.trace_order.pop_front();
                self.traces.remove(&t);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_expire_and_are_bounded() {
        let idx = SessionIndex::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        {
            let mut g = idx.lock();
            g.observe(1, "a", t0);
            g.observe(2, "b", t0);
        }
        assert_eq!(idx.session_of(1, t0).as_deref(), Some("a"));
        assert_eq!(idx.session_of(1, t0 + Duration::from_secs(61)), None, "ttl");
        // A third session evicts the least recently seen one.
        idx.lock().observe(3, "c", t0 + Duration::from_secs(1));
        assert_eq!(idx.sessions(), 2);
        idx.mark_kept(3, t0 + Duration::from_secs(1));
        idx.lock().observe(4, "c", t0 + Duration::from_secs(2));
        assert!(idx.session_kept(4, t0 + Duration::from_secs(2)));
        assert!(!idx.session_kept(4, t0 + Duration::from_secs(62)));
        assert!(!idx.session_kept(2, t0 + Duration::from_secs(2)));
    }
}
