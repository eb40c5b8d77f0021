//! Any bytes as an OTLP protobuf request: decode, validate, limit, batch, re-encode as protobuf
//! and JSON, and read the JSON back. Nothing may panic; what we write we must read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spangate::data::{decode_request, json, limits, validate, SpanBatch};

fuzz_target!(|data: &[u8]| {
    let Ok(mut req) = decode_request(data) else {
        return;
    };
    validate::remove_invalid(&mut req.resource_spans);
    limits::apply(
        &mut req.resource_spans,
        limits::AttrLimits {
            max_attributes_per_span: Some(4),
            max_attribute_value_length: Some(7),
        },
    );
    let batch = SpanBatch::new(req.resource_spans);
    let proto = batch.encoded();
    let again = decode_request(&proto).expect("our protobuf decodes");
    assert_eq!(
        spangate::data::count_spans(&again.resource_spans),
        batch.len()
    );
    let text = json::encode_request(batch.resource_spans());
    let back = json::decode_unbounded(text.as_bytes()).expect("our JSON decodes");
    assert_eq!(
        spangate::data::count_spans(&back.resource_spans),
        batch.len()
    );
});
