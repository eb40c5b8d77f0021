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

// mimalloc's own option API (linked in through the `mimalloc` crate).
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e`.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Gives freed pages back to the OS after 10 ms (mimalloc 2's default) instead of mimalloc 3's
/// 1 s: tail sampling frees a second's worth of traces at a time, and holding them for a second
/// more shows as RSS. Measured at 20k spans/s with the full chain, peak RSS 134 → 96 MiB and idle
/// after the load 54 → 43 MiB, CPU within noise. `MIMALLOC_PURGE_DELAY` in the environment wins.
fn prompt_purge() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an integer option; mimalloc reads it on its next purge.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    }
}

fn main() {
    no_huge_pages();
    prompt_purge();
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
