//! The `otlp` exporter over gRPC or HTTP.

pub mod config;
pub mod grpc;
pub mod http;
