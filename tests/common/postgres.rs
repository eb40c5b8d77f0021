//! A real PostgreSQL server for the tests, made with initdb and run with pg_ctl in a temp dir
//! on a free port. Missing binaries are a failure, never a skip. Run as root, the server runs
//! as the `postgres` user (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
}

static SHARED: OnceLock<PgServer> = OnceLock::new();

/// One server shared by the tests of a binary (each test uses its own schema).
pub fn shared() -> &'static PgServer {
    SHARED.get_or_init(PgServer::start)
}

fn bin(name: &str) -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    // Debian keeps the server binaries off PATH.
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("the Postgres tests need `{name}` (Debian: apt-get install postgresql); ./scripts/test.sh installs it")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// `cmd args` as the server's owner.
fn run(cmd: &Path, args: &[&str]) -> std::process::Output {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    };
    c.args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", cmd.display()))
}

impl PgServer {
    pub fn start() -> PgServer {
        let dir = std::env::temp_dir().join(format!(
            "spangate-pg-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {} to postgres", dir.display());
        }
        let data = dir.join("data");
        let out = run(
            &bin("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = PgServer {
            port: super::free_port(),
            dir,
        };
        server.start_again();
        // A watchdog stops the server when this test process goes away.
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {}'{}' -D '{}' stop -m immediate",
            std::process::id(),
            if is_root() {
                "runuser -u postgres -- "
            } else {
                ""
            },
            bin("pg_ctl").display(),
            data.display()
        );
        super::watchdog(&script);
        server
    }

    pub fn dsn(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (again) on the same port and data.
    pub fn start_again(&self) {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let out = run(
            &bin("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                self.dir.join("log").to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    pub fn stop(&self) {
        let data = self.dir.join("data");
        let out = run(
            &bin("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A client on a current-thread runtime, for checking what was stored.
    pub fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.dsn(), tokio_postgres::NoTls)
                .await
                .expect("connect to the test postgres");
            tokio::spawn(conn);
            client
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
    }
}
