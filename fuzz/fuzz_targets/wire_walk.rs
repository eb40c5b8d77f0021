//! Any bytes through the wire walk, beside prost's decode: the walk must accept exactly what
//! prost accepts, count the same spans, and a batch kept as the bytes must encode to a request
//! that decodes to the same spans. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spangate::data::{count_spans, decode_request, wire, SpanBatch};

fuzz_target!(|data: &[u8]| {
    let walked = wire::walk(data);
    let decoded = decode_request(data);
    assert_eq!(walked.is_ok(), decoded.is_ok(), "walk {walked:?}");
    let (Ok(walked), Ok(decoded)) = (walked, decoded) else {
        return;
    };
    assert_eq!(walked.spans, count_spans(&decoded.resource_spans));
    assert_eq!(walked.resource_spans, decoded.resource_spans.len());
    let mut batch = SpanBatch::from_wire(bytes_of(data), walked.spans);
    batch.absorb(SpanBatch::from_wire(bytes_of(data), walked.spans));
    let again = decode_request(&batch.encoded()).expect("concatenated requests decode");
    assert_eq!(count_spans(&again.resource_spans), 2 * walked.spans);
});

fn bytes_of(data: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(data)
}
