//! OTLP/gRPC client. Sends the batch's cached protobuf encoding as is (no re-encode per
//! exporter) through tonic's client with a pass-through codec.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use super::config::{Compression, OtlpExporterConfig};
use crate::component::{BoxFuture, ExportError, Exporter};
use crate::data::{rpc, SpanBatch};
use crate::exporters::tls::endpoint_url;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

pub struct GrpcExporter {
    channel: Channel,
    metadata: MetadataMap,
    gzip: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcSetupError {
    #[error("invalid endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    #[error("{0}")]
    Read(String),
    #[error("invalid header {0}")]
    Header(String),
}

impl GrpcExporter {
    pub fn new(cfg: &OtlpExporterConfig) -> Result<Self, GrpcSetupError> {
        let url = endpoint_url(&cfg.endpoint, &cfg.tls);
        let mut endpoint = Endpoint::from_shared(url.clone())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            match &cfg.tls.ca_file {
                Some(ca) => {
                    let pem = std::fs::read(ca).map_err(|e| GrpcSetupError::Read(format!("{ca}: {e}")))?;
                    tls = tls.ca_certificate(Certificate::from_pem(pem));
                }
                None => tls = tls.with_native_roots(),
            }
            if let (Some(c), Some(k)) = (&cfg.tls.cert_file, &cfg.tls.key_file) {
                let cert = std::fs::read(c).map_err(|e| GrpcSetupError::Read(format!("{c}: {e}")))?;
                let key = std::fs::read(k).map_err(|e| GrpcSetupError::Read(format!("{k}: {e}")))?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let mut metadata = MetadataMap::new();
        for (k, v) in &cfg.headers.0 {
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| GrpcSetupError::Header(k.clone()))?;
            let value = MetadataValue::try_from(v.as_str())
                .map_err(|_| GrpcSetupError::Header(k.clone()))?;
            metadata.insert(key, value);
        }
        Ok(GrpcExporter {
            // Lazy: a backend that is down at start is retried per batch, never a start failure.
            channel: endpoint.connect_lazy(),
            metadata,
            gzip: cfg.compression == Compression::Gzip,
        })
    }
}

/// Classifies a gRPC status as the OTLP spec says: these codes are transient.
pub fn classify(status: &Status) -> ExportError {
    let retryable = matches!(
        status.code(),
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss
            | Code::DeadlineExceeded
    );
    let reason = format!("{:?}: {}", status.code(), status.message());
    if retryable {
        ExportError::Retryable {
            reason,
            retry_after: rpc::retry_delay(status.details()),
        }
    } else {
        ExportError::Permanent {
            reason,
            rejected: None,
        }
    }
}

impl Exporter for GrpcExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let mut client = tonic::client::Grpc::new(self.channel.clone());
            if self.gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client = client.accept_compressed(CompressionEncoding::Gzip);
            client.ready().await.map_err(|e| ExportError::Retryable {
                reason: format!("connection not ready: {e}"),
                retry_after: None,
            })?;
            let mut request = tonic::Request::new(batch.encoded().clone());
            *request.metadata_mut() = self.metadata.clone();
            let response = client
                .unary(request, PathAndQuery::from_static(EXPORT_PATH), RawCodec)
                .await
                .map_err(|s| classify(&s))?;
            match response.into_inner().partial_success {
                Some(p) if p.rejected_spans > 0 => Err(ExportError::Permanent {
                    reason: format!("backend rejected spans: {}", p.error_message),
                    rejected: Some(p.rejected_spans as u64),
                }),
                _ => Ok(()),
            }
        })
    }
}

/// Sends pre-encoded request bytes; decodes the response with prost.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("bad response: {e}")))
    }
}
