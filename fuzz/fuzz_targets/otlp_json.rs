//! Any bytes as an OTLP/JSON request (what the HTTP receiver and the Kafka receiver decode).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = spangate::data::json::decode_request(data) {
        // What decodes re-encodes.
        let _ = spangate::data::json::encode_request(&req.resource_spans);
    }
});
