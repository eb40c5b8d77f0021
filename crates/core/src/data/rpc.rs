//! The few `google.rpc` messages OTLP uses: `Status` (error bodies, gRPC status details) and
//! `RetryInfo` (how long a throttled client should wait).

use std::time::Duration;

use prost::Message;

pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<prost_types::Duration>,
}

/// Encoded `google.rpc.Status` carrying a `RetryInfo`, for `grpc-status-details-bin`.
pub fn status_with_retry(code: i32, message: &str, retry_after: Duration) -> Vec<u8> {
    let info = RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: retry_after.as_secs() as i64,
            nanos: retry_after.subsec_nanos() as i32,
        }),
    };
    RpcStatus {
        code,
        message: message.to_string(),
        details: vec![prost_types::Any {
            type_url: RETRY_INFO_TYPE.into(),
            value: info.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

/// The retry delay inside encoded status details, if any.
pub fn retry_delay(details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(details).ok()?;
    status
        .details
        .iter()
        .filter(|a| a.type_url == RETRY_INFO_TYPE)
        .find_map(|a| RetryInfo::decode(a.value.as_slice()).ok()?.retry_delay)
        .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trip() {
        let b = status_with_retry(14, "full", Duration::from_millis(1500));
        assert_eq!(retry_delay(&b), Some(Duration::from_millis(1500)));
        assert_eq!(retry_delay(b"garbage"), None);
    }
}
