//! Any bytes as a gzip body, with the receivers' decompressed-size limit (bombs stop there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = spangate::data::gzip::decompress(data, 1 << 20) {
        assert!(out.len() <= 1 << 20);
    }
});
