//! `service.memory_limit_mib`, as the contrib memory_limiter does it: the process's resident
//! memory is sampled every 100 ms; above the soft limit (`memory_limit_mib` minus
//! `memory_spike_limit_mib`, by default 20% of the limit) receivers refuse with retryable codes
//! before reading request bodies and the Kafka receiver pauses; below the soft limit minus 5% of
//! the limit they accept again. Resident memory (RSS, from /proc/self/status) is what the
//! kernel's and the container's OOM killers weigh; queued batches, buffered traces and request
//! bodies all show up in it.
//!
//! With no `memory_limit_mib` the limit is [`CGROUP_SHARE_PERCENT`] of the process's cgroup
//! memory limit ([`cgroup_limit`]: v2 `memory.max`, v1 `memory.limit_in_bytes`, the smallest on
//! the way to the root), so a container's default is never to be OOM-killed by a flood.
//! `memory_limit_mib: 0` turns the limit off.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SAMPLE_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
pub struct MemoryLimit {
    over: AtomicBool,
    /// Bytes; 0 when no limit is set.
    soft: AtomicU64,
    resume: AtomicU64,
    /// Bytes between the soft limit and the limit (what in-flight work may take); 0: no limit.
    allowance: AtomicU64,
}

impl MemoryLimit {
    /// True while new data should be refused.
    pub fn over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// The headroom above the soft limit, in bytes, when a limit is set: what requests being
    /// decoded may take between them.
    pub fn allowance(&self) -> Option<u64> {
        match self.allowance.load(Ordering::Relaxed) {
            0 => None,
            a => Some(a),
        }
    }

    /// Sets (or, with `None`, clears) the limit, in bytes; `spike_mib` defaults to 20% of it.
    pub fn configure(&self, limit: Option<u64>, spike_mib: Option<u64>) {
        let Some(limit) = limit else {
            self.soft.store(0, Ordering::SeqCst);
            self.allowance.store(0, Ordering::SeqCst);
            self.over.store(false, Ordering::SeqCst);
            return;
        };
        let spike = spike_mib.map_or(limit / 5, |s| s * 1024 * 1024);
        let soft = limit.saturating_sub(spike).max(1);
        self.soft.store(soft, Ordering::SeqCst);
        self.allowance
            .store((limit - soft).max(1), Ordering::SeqCst);
        self.resume
            .store(soft.saturating_sub(limit / 20), Ordering::SeqCst);
    }

    /// Updates the refusing state from one RSS sample.
    pub fn observe(&self, rss: u64) {
        let soft = self.soft.load(Ordering::SeqCst);
        if soft == 0 {
            return;
        }
        let over = self.over.load(Ordering::SeqCst);
        if !over && rss > soft {
            self.over.store(true, Ordering::SeqCst);
            tracing::warn!(
                rss_mib = rss >> 20,
                soft_limit_mib = soft >> 20,
                "memory above the soft limit: refusing new data until it drops"
            );
        } else if over && rss < self.resume.load(Ordering::SeqCst) {
            self.over.store(false, Ordering::SeqCst);
            tracing::info!(
                rss_mib = rss >> 20,
                "memory back under the limit: accepting again"
            );
        }
    }
}

/// The share of the cgroup's memory limit taken as the limit when none is configured: the rest
/// is headroom for what RSS does not count the moment it is sampled (allocator caches, the page
/// cache the cgroup charges, a burst between two samples).
pub const CGROUP_SHARE_PERCENT: u64 = 80;

/// Where the limit in force comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitSource {
    /// `service.memory_limit_mib`.
    Config,
    /// [`CGROUP_SHARE_PERCENT`] of `limit` bytes, read from `file`.
    Cgroup { limit: u64, file: PathBuf },
}

/// The limit in force, in bytes, and where it comes from: `memory_limit_mib` when set (0: no
/// limit), else a share of the cgroup's limit, else none.
pub fn effective_limit(config_mib: Option<u64>) -> Option<(u64, LimitSource)> {
    match config_mib {
        Some(0) => None,
        Some(mib) => Some((mib << 20, LimitSource::Config)),
        None => {
            let (limit, file) = cgroup_limit(Path::new("/proc/self/cgroup"), Path::new(CGROUP_FS))?;
            let share = (limit as u128 * CGROUP_SHARE_PERCENT as u128 / 100) as u64;
            Some((share, LimitSource::Cgroup { limit, file }))
        }
    }
}

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// The memory limit of this process's cgroup and the file it was read from; `None` when there
/// is none (unlimited, or no cgroup filesystem). Limits nest, so it is the smallest from the
/// process's own cgroup up to the root of the mount (in a container, whose cgroup namespace
/// makes its own cgroup the root, the walk starts at the root). v2 first, then v1's memory
/// controller. A limit at or above the machine's memory is no limit.
pub fn cgroup_limit(proc_cgroup: &Path, fs: &Path) -> Option<(u64, PathBuf)> {
    let table = std::fs::read_to_string(proc_cgroup).ok()?;
    let mut found = None;
    for line in table.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (dir, file) = if controllers.is_empty() {
            (fs.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (fs.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        if let Some(hit) = smallest_on_the_way_up(&dir, path, file) {
            found = Some(hit);
            break;
        }
    }
    let (limit, file) = found?;
    let total = machine_memory().unwrap_or(u64::MAX);
    (limit < total).then_some((limit, file))
}

fn smallest_on_the_way_up(root: &Path, cgroup: &str, file: &str) -> Option<(u64, PathBuf)> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut rel = Path::new(cgroup.trim_start_matches('/'));
    loop {
        let candidate = root.join(rel).join(file);
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            // v2 writes `max` for no limit; v1 a number near i64::MAX.
            if let Ok(limit) = text.trim().parse::<u64>() {
                if best.as_ref().is_none_or(|(b, _)| limit < *b) {
                    best = Some((limit, candidate));
                }
            }
        }
        match rel.parent() {
            Some(p) => rel = p,
            None => break,
        }
    }
    best
}

/// Total memory of the machine (MemTotal), in bytes.
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples RSS into the gauge and the limit, for the life of the process.
pub async fn watch(telemetry: Arc<super::Telemetry>) {
    let gauge = telemetry.metrics.process_rss();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if let Some(rss) = rss_bytes() {
            gauge.set(rss as i64);
            telemetry.memory.observe(rss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_above_soft_and_resumes_below_with_hysteresis() {
        let m = MemoryLimit::default();
        m.observe(u64::MAX);
        assert!(!m.over(), "no limit, never over");
        let mib = |n: u64| n * 1024 * 1024;
        m.configure(Some(mib(100)), None); // soft 80 MiB, resume 75 MiB
        m.observe(mib(79));
        assert!(!m.over());
        m.observe(mib(81));
        assert!(m.over());
        m.observe(mib(77));
        assert!(m.over(), "hysteresis");
        m.observe(mib(74));
        assert!(!m.over());
        m.configure(Some(mib(100)), Some(50));
        m.observe(mib(51));
        assert!(m.over());
        m.configure(None, None);
        assert!(!m.over());
        assert!(rss_bytes().is_some_and(|r| r > 0));
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn cgroup_limits_v1_and_v2() {
        let dir = std::env::temp_dir().join(format!("spangate-cgroup-{}", std::process::id()));
        let (proc, fs) = (dir.join("cgroup"), dir.join("fs"));
        // v1 (these machines): the memory controller's line names the cgroup; a parent's
        // smaller limit wins, and "unlimited" is a number near i64::MAX.
        write(&proc, "9:name=systemd:/\n4:memory:/pods/a\n1:cpu:/\n0::/\n");
        write(
            &fs.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        write(&fs.join("memory/pods/memory.limit_in_bytes"), "536870912\n");
        write(
            &fs.join("memory/pods/a/memory.limit_in_bytes"),
            "268435456\n",
        );
        let (limit, file) = cgroup_limit(&proc, &fs).unwrap();
        assert_eq!(limit, 256 << 20);
        assert!(
            file.ends_with("memory/pods/a/memory.limit_in_bytes"),
            "{file:?}"
        );
        write(&fs.join("memory/pods/memory.limit_in_bytes"), "134217728\n");
        assert_eq!(
            cgroup_limit(&proc, &fs).unwrap().0,
            128 << 20,
            "the parent's"
        );
        // No limit anywhere: none.
        for f in [
            "memory/pods/memory.limit_in_bytes",
            "memory/pods/a/memory.limit_in_bytes",
        ] {
            write(&fs.join(f), "9223372036854771712\n");
        }
        assert_eq!(cgroup_limit(&proc, &fs), None);
        // v2: one line `0::/path`, `memory.max` with `max` for none. A namespaced container
        // sees `0::/` and its own limit at the root.
        std::fs::remove_dir_all(&fs).unwrap();
        write(&proc, "0::/kubepods/pod1/c1\n");
        write(&fs.join("kubepods/pod1/c1/memory.max"), "max\n");
        write(&fs.join("kubepods/pod1/memory.max"), "268435456\n");
        assert_eq!(cgroup_limit(&proc, &fs).unwrap().0, 256 << 20);
        write(&proc, "0::/\n");
        std::fs::remove_dir_all(&fs).unwrap();
        write(&fs.join("memory.max"), "104857600\n");
        assert_eq!(cgroup_limit(&proc, &fs).unwrap().0, 100 << 20);
        assert_eq!(cgroup_limit(&dir.join("missing"), &fs), None);
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(effective_limit(Some(0)), None, "0 turns it off");
        assert_eq!(
            effective_limit(Some(64)),
            Some((64 << 20, LimitSource::Config))
        );
    }
}
