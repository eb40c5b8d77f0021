//! Every component compiled into this binary, by the type name written in `pipelines.yaml`:
//! the one place that names them (the contrib collector's `components.go`). A plugin is its
//! cargo feature plus one line here. A component whose cargo feature is off is still known by
//! name, so a config naming it gets "not built into this binary" rather than "unknown type".
//!
//! `Registry` is `spangate-core`'s, so the table is an extension: `use
//! spangate::components::Builtin` and call `Registry::builtin()`.

use std::sync::Arc;

use crate::component::registry::{Problems, Registry};
use crate::component::{ExporterConfig, ReceiverConfig};
use crate::{exporters, processors};

/// The registry of this binary.
pub trait Builtin {
    /// Every built-in receiver, processor and exporter, and every compiled-in plugin.
    fn builtin() -> Self;
}

impl Builtin for Registry {
    fn builtin() -> Self {
        let mut r = Registry::empty();
        #[cfg(feature = "otlp")]
        r.add_receiver("otlp", crate::receivers::otlp::config::parse);
        #[cfg(not(feature = "otlp"))]
        r.add_receiver("otlp", |_| missing("otlp"));
        #[cfg(feature = "kafka")]
        r.add_receiver("kafka", crate::receivers::kafka::config::parse);
        #[cfg(not(feature = "kafka"))]
        r.add_receiver("kafka", |_| missing("kafka"));

        r.add_processor("allowlist", processors::allowlist::parse);
        r.add_processor("batch", processors::batch::parse);
        r.add_processor(
            "probabilistic_sampler",
            processors::probabilistic_sampler::parse,
        );
        r.add_processor("rate_limiting", processors::rate_limiting::parse);
        r.add_processor("redaction", processors::redaction::parse);
        r.add_processor("tail_sampling", processors::tail_sampling::parse);
        r.add_processor("session", processors::session::parse);

        r.add_exporter("debug", exporters::debug::parse);
        r.add_exporter("file", exporters::file::parse);
        // `otlp_grpc`, `otlp_http` and `otlphttp` are the contrib collector's aliases.
        #[cfg(feature = "otlp")]
        {
            use exporters::otlp::{parse_otlp, parse_otlp_http};
            r.add_exporter("otlp", parse_otlp);
            r.add_exporter("otlp_grpc", parse_otlp);
            r.add_exporter("otlp_http", parse_otlp_http);
            r.add_exporter("otlphttp", parse_otlp_http);
            r.add_exporter("jaeger", exporters::jaeger::config::parse);
            r.add_exporter("tempo", exporters::tempo::config::parse);
        }
        #[cfg(not(feature = "otlp"))]
        for kind in [
            "otlp",
            "otlp_grpc",
            "otlp_http",
            "otlphttp",
            "jaeger",
            "tempo",
        ] {
            r.add_exporter(kind, |_| missing_exporter("otlp"));
        }
        #[cfg(feature = "kafka")]
        r.add_exporter("kafka", exporters::kafka::config::parse);
        #[cfg(not(feature = "kafka"))]
        r.add_exporter("kafka", |_| missing_exporter("kafka"));
        #[cfg(feature = "postgres")]
        r.add_exporter("postgres", exporters::postgres::config::parse);
        #[cfg(not(feature = "postgres"))]
        r.add_exporter("postgres", |_| missing_exporter("postgres"));

        // Plugins: the same contract as the built-ins above.
        #[cfg(feature = "plugin-span-name-normalizer")]
        r.add_processor(span_name_normalizer::KIND, span_name_normalizer::parse);
        r
    }
}

/// The problem reported for a component whose cargo feature this binary was built without.
#[allow(dead_code)] // Used only when a feature is off.
fn not_built(feature: &str) -> Problems {
    vec![(
        String::new(),
        format!(
            "this spangate was built without this component (cargo feature `{feature}`); \
             use a build with the feature (the default build has every component)"
        ),
    )]
}

#[allow(dead_code)]
fn missing(feature: &str) -> Result<Arc<dyn ReceiverConfig>, Problems> {
    Err(not_built(feature))
}

#[allow(dead_code)]
fn missing_exporter(feature: &str) -> Result<Arc<dyn ExporterConfig>, Problems> {
    Err(not_built(feature))
}
