//! Every component compiled into this binary, by the type name written in `pipelines.yaml`:
//! the one place that names them (the contrib collector's `components.go`). A plugin is its
//! cargo feature plus one line here.

#[cfg(feature = "plugin-span-name-normalizer")]
use crate::component::plugin;
use crate::component::registry::Registry;
use crate::{exporters, processors, receivers};

impl Registry {
    /// Every built-in receiver, processor and exporter, and every compiled-in plugin.
    pub fn builtin() -> Self {
        let mut r = Registry::empty();
        r.add_receiver("otlp", receivers::otlp::config::parse);
        r.add_receiver("kafka", receivers::kafka::config::parse);

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

        r.add_exporter("otlp", exporters::otlp::parse_otlp);
        // Aliases the contrib collector uses.
        r.add_exporter("otlp_grpc", exporters::otlp::parse_otlp);
        r.add_exporter("otlp_http", exporters::otlp::parse_otlp_http);
        r.add_exporter("otlphttp", exporters::otlp::parse_otlp_http);
        r.add_exporter("debug", exporters::debug::parse);
        r.add_exporter("file", exporters::file::parse);
        r.add_exporter("kafka", exporters::kafka::config::parse);
        r.add_exporter("postgres", exporters::postgres::config::parse);
        r.add_exporter("jaeger", exporters::jaeger::config::parse);
        r.add_exporter("tempo", exporters::tempo::config::parse);

        #[cfg(feature = "plugin-span-name-normalizer")]
        plugin::register(&mut r, std::sync::Arc::new(span_name_normalizer::Plugin));
        r
    }
}
