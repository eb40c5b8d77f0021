//! The FNV-1a hashes the contrib collector's samplers use, so decisions agree across fleets.

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;
const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 32 over the seed's 4 little-endian bytes, then `data` (contrib `hash_seed` mode).
pub fn fnv1a32_seeded(seed: u32, data: &[u8]) -> u32 {
    seed.to_le_bytes()
        .iter()
        .chain(data)
        .fold(FNV32_OFFSET, |h, b| {
            (h ^ *b as u32).wrapping_mul(FNV32_PRIME)
        })
}

/// FNV-1a 64 over `salt`, then `data` (contrib tail sampling `probabilistic` policy).
pub fn fnv1a64_salted(salt: &[u8], data: &[u8]) -> u64 {
    salt.iter().chain(data).fold(FNV64_OFFSET, |h, b| {
        (h ^ *b as u64).wrapping_mul(FNV64_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed with an independent FNV-1a implementation.
    #[test]
    fn vectors() {
        let tid: Vec<u8> = (1..=16).collect();
        assert_eq!(fnv1a32_seeded(0, &tid), 0xdf24_1a25);
        assert_eq!(fnv1a32_seeded(22, &tid), 0xd863_b443);
        assert_eq!(fnv1a32_seeded(0xdead_beef, &tid), 0x6bcb_41ab);
        assert_eq!(fnv1a64_salted(b"", b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64_salted(b"", b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            fnv1a64_salted(b"default-hash-seed", &tid),
            0xdbcf_64d5_420f_4cad
        );
        assert_eq!(fnv1a64_salted(b"x", &tid), 0x34b9_27bf_8af6_d067);
    }
}
