use clap::Parser;

// OTLP decoding allocates per attribute; mimalloc's thread-local free lists cut the allocator's
// share of CPU under load (measured with `cargo bench --bench load`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use spangate::cli::{Cli, Command};

/// Opts this process out of transparent huge pages. With THP `always` (many distributions'
/// default) the allocator's arenas are faulted in 2 MiB at a time, and a sidecar holding a few
/// MiB of spans sits at three times that: measured at 20k spans/s, peak RSS 56 → 27 MiB and idle
/// 19.5 → 12.3 MiB, for no CPU the load test could see.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() {
    no_huge_pages();
    let cli = Cli::parse();
    let paths = cli.config_paths();
    let code = match cli.command {
        Some(Command::Validate) => spangate::app::validate(&paths),
        Some(Command::Traces(ref t)) => t.run(),
        Some(Command::Healthcheck {
            ref address,
            ref path,
        }) => spangate::cli::healthcheck(address, path),
        Some(Command::Run) | None => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("spangate")
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    std::process::exit(1);
                }
            };
            match runtime.block_on(spangate::app::run(paths)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}
