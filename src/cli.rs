//! Command line: `spangate [--config PATH]...`, `spangate validate --config PATH`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "spangate",
    version,
    about = "A fast, lean OpenTelemetry trace pipeline"
)]
pub struct Cli {
    /// Config file; give it again to merge more files over it (maps merge, lists replace).
    #[arg(long = "config", short = 'c', global = true, value_name = "PATH")]
    pub config: Vec<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipelines (the default).
    Run,
    /// Check the config: exit 0 if it would start, else print every problem and exit 1.
    Validate,
}

impl Cli {
    pub fn config_paths(&self) -> Vec<PathBuf> {
        if self.config.is_empty() {
            vec![PathBuf::from("pipelines.yaml")]
        } else {
            self.config.clone()
        }
    }
}
