//! gzip with a bound on the decompressed size (gzip bombs stop at the limit, not at OOM).

use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum GunzipError {
    #[error("decompressed body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid gzip data: {0}")]
    Corrupt(std::io::Error),
}

pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::with_capacity((data.len() * 4).min(limit.saturating_add(1)));
    flate2::read::MultiGzDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(GunzipError::Corrupt)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge { limit });
    }
    Ok(out)
}

pub fn compress(data: &[u8]) -> Vec<u8> {
    compress_parts(&[data], 0)
}

/// gzip of the concatenation of `parts`, after `prefix` zero bytes left for the caller's
/// framing (a gRPC message header), so the result needs no further copy.
pub fn compress_parts(parts: &[impl AsRef<[u8]>], prefix: usize) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    let mut out = Vec::with_capacity(prefix + len / 4 + 64);
    out.resize(prefix, 0);
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    for p in parts {
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(p.as_ref());
    }
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_limit_and_corruption() {
        let data = vec![7u8; 10_000];
        let z = compress(&data);
        assert_eq!(decompress(&z, 10_000).unwrap(), data);
        assert!(matches!(
            decompress(&z, 9_999),
            Err(GunzipError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress(&z[..z.len() / 2], 100_000),
            Err(GunzipError::Corrupt(_))
        ));
        assert!(matches!(
            decompress(b"not gzip", 100),
            Err(GunzipError::Corrupt(_))
        ));
    }

    #[test]
    fn parts_compress_as_their_concatenation() {
        let parts = [&b"hello "[..], b"", b"world"];
        let z = compress_parts(&parts, 5);
        assert_eq!(&z[..5], &[0; 5]);
        assert_eq!(decompress(&z[5..], 100).unwrap(), b"hello world");
    }
}
