//! The OTLP client the `otlp`, `tempo` and `jaeger` exporters share: config (endpoint,
//! protocol, headers, compression, TLS) and one exporter per transport.

pub mod config;
pub mod grpc;
pub mod http;
