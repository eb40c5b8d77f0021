//! `batch`: groups spans into batches of `send_batch_size`, or whatever arrived within
//! `timeout`; splits at `send_batch_max_size`. Owns its timer; flushes all it holds when its input
//! closes.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::Output;
use crate::component::{
    BoxFuture, BuildError, Processor, ProcessorConfig, ProcessorContext, StagedProcessor,
};
use crate::data::SpanBatch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Send once this many spans are waiting (default 8192).
    #[serde(default = "default_size")]
    pub send_batch_size: usize,
    /// Never send more than this many spans at once; 0 = no limit (default 0).
    #[serde(default)]
    pub send_batch_max_size: usize,
    /// Send whatever is waiting after this long (default 200ms); 0 sends at once.
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
}

fn default_size() -> usize {
    8192
}
fn default_timeout() -> Duration {
    Duration::from_millis(200)
}

impl Check for BatchConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            out.push((
                "send_batch_max_size".into(),
                format!(
                    "must be 0 or at least send_batch_size ({})",
                    self.send_batch_size
                ),
            ));
        }
        if self.send_batch_size == 0 {
            out.push(("send_batch_size".into(), "must be at least 1".into()));
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ProcessorConfig>, Problems> {
    Ok(Arc::new(parse_config::<BatchConfig>(v)?))
}

impl ProcessorConfig for BatchConfig {
    fn build(&self, _ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        Ok(Processor::Staged(Box::new(Batcher {
            config: self.clone(),
        })))
    }
}

struct Batcher {
    config: BatchConfig,
}

impl StagedProcessor for Batcher {
    /// Up to a second: the durable answer's wait then stays far under SDK timeouts.
    fn holds_briefly(&self) -> bool {
        self.config.timeout <= std::time::Duration::from_secs(1)
    }

    fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SpanBatch>,
        output: Box<dyn Output>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run(self.config, input, output))
    }
}

/// Splits off what is ready to send: full batches, or everything when `all`.
fn ready(pending: &mut Option<SpanBatch>, cfg: &BatchConfig, all: bool) -> Vec<SpanBatch> {
    let mut out = Vec::new();
    while let Some(p) = pending.as_mut() {
        let n = p.len();
        if n == 0 || (!all && n < cfg.send_batch_size) {
            break;
        }
        if cfg.send_batch_max_size > 0 && n > cfg.send_batch_max_size {
            out.push(p.split_front(cfg.send_batch_max_size));
        } else if let Some(whole) = pending.take() {
            out.push(whole);
        }
    }
    if pending.as_ref().is_some_and(SpanBatch::is_empty) {
        *pending = None;
    }
    out
}

async fn run(cfg: BatchConfig, mut input: mpsc::Receiver<SpanBatch>, output: Box<dyn Output>) {
    let mut pending: Option<SpanBatch> = None;
    let mut deadline: Option<Instant> = None;
    loop {
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let flush_all = tokio::select! {
            msg = input.recv() => match msg {
                Some(b) => {
                    match pending.as_mut() {
                        Some(p) => p.absorb(b),
                        None => pending = Some(b),
                    }
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + cfg.timeout);
                    }
                    cfg.timeout.is_zero()
                }
                None => {
                    for b in ready(&mut pending, &cfg, true) {
                        output.send(b).await;
                    }
                    return;
                }
            },
            _ = timer => true,
        };
        let sent_any = {
            let batches = ready(&mut pending, &cfg, flush_all);
            let any = !batches.is_empty();
            for b in batches {
                output.send(b).await;
            }
            any
        };
        // The timer restarts with the next span after a send, as in the contrib processor.
        if pending.is_none() {
            deadline = None;
        } else if sent_any {
            deadline = Some(Instant::now() + cfg.timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::registry::parse_config;
    use crate::data::SpanBatch;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn spans(n: usize) -> SpanBatch {
        SpanBatch::new(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    fn cfg(size: usize, max: usize) -> BatchConfig {
        BatchConfig {
            send_batch_size: size,
            send_batch_max_size: max,
            timeout: Duration::from_millis(200),
        }
    }

    #[test]
    fn ready_respects_size_and_max() {
        let c = cfg(10, 15);
        let mut p = Some(spans(9));
        assert!(ready(&mut p, &c, false).is_empty());
        p.as_mut().unwrap().absorb(spans(30));
        let out = ready(&mut p, &c, false);
        assert_eq!(
            out.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![15, 15]
        );
        assert_eq!(p.as_ref().unwrap().len(), 9);
        let out = ready(&mut p, &c, true);
        assert_eq!(out.len(), 1);
        assert!(p.is_none());
    }

    #[test]
    fn config_defaults_and_checks() {
        let c: BatchConfig = parse_config(&serde_json::json!({})).unwrap();
        assert_eq!(c.send_batch_size, 8192);
        assert_eq!(c.timeout, Duration::from_millis(200));
        let e = parse_config::<BatchConfig>(
            &serde_json::json!({"send_batch_size": 10, "send_batch_max_size": 5}),
        )
        .unwrap_err();
        assert_eq!(e[0].0, "send_batch_max_size");
        let e = parse_config::<BatchConfig>(&serde_json::json!({"timeout": "fast"})).unwrap_err();
        assert_eq!(e[0].0, "timeout");
    }
}
