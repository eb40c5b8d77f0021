//! A memory cgroup of its own for one test process (v1 or v2, whichever the machine mounts), to
//! run spangate as a container would: with a memory limit the kernel enforces by OOM-killing.
//! Needs root; without it (or without a cgroup filesystem) the test fails with CI=true and says
//! so loudly otherwise.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    /// A new cgroup limited to `limit` bytes; `None` (after saying why) when the machine cannot
    /// make one outside CI.
    pub fn new(limit: u64) -> Option<MemoryCgroup> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "spangate-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let (dir, file) = if v2 {
            (Path::new("/sys/fs/cgroup").join(name), "memory.max")
        } else {
            (
                Path::new("/sys/fs/cgroup/memory").join(name),
                "memory.limit_in_bytes",
            )
        };
        let made = std::fs::create_dir(&dir)
            .and_then(|_| std::fs::write(dir.join(file), limit.to_string()));
        if let Err(e) = made {
            let _ = std::fs::remove_dir(&dir);
            let msg = format!(
                "cannot make a memory cgroup at {} ({e}): this test needs root and a cgroup filesystem",
                dir.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED (not in CI): {msg}");
            return None;
        }
        Some(MemoryCgroup { dir, v2 })
    }

    /// The file a process writes its pid to, to join.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// The most memory the cgroup was charged, in MiB (RSS plus the page cache it charges).
    pub fn peak_mib(&self) -> u64 {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        self.read(file).trim().parse::<u64>().unwrap_or(0) >> 20
    }

    /// How many processes the kernel OOM-killed in it.
    pub fn oom_kills(&self) -> u64 {
        let text = if self.v2 {
            self.read("memory.events")
        } else {
            self.read("memory.oom_control")
        };
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Its processes are gone by now (declare the cgroup before what runs in it); a cgroup
        // with none left is removed with rmdir.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}
