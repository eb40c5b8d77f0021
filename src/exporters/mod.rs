//! Exporters: where spans leave. Each makes one attempt per call; [`helper`] does the rest.

pub mod debug;
pub mod file;
pub mod jaeger;
pub mod kafka;
pub mod otlp;
pub mod postgres;
pub mod tempo;

use crate::component::registry::Registry;

pub fn register(r: &mut Registry) {
    r.add_exporter("otlp", otlp::config::parse_otlp);
    // Aliases the contrib collector uses.
    r.add_exporter("otlp_grpc", otlp::config::parse_otlp);
    r.add_exporter("otlp_http", otlp::config::parse_otlp_http);
    r.add_exporter("otlphttp", otlp::config::parse_otlp_http);
    r.add_exporter("debug", debug::parse);
    r.add_exporter("file", file::parse);
    r.add_exporter("kafka", kafka::config::parse);
    r.add_exporter("postgres", postgres::config::parse);
    r.add_exporter("jaeger", jaeger::config::parse);
    r.add_exporter("tempo", tempo::config::parse);
}
