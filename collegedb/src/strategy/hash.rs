//! Hash placement: jump consistent hash over the stable shard order.
//!
//! Why jump hash and not `hash % n`: when a shard is appended to `n` shards,
//! jump hash moves only the keys that now belong to the new shard, about
//! `1/(n+1)` of them, while modulo moves about `n/(n+1)`. It needs no table
//! and no memory. Its one requirement is that shards are only ever appended
//! to the configured order, never inserted in the middle or reordered.

use sha2::{Digest, Sha256};

/// The 64-bit placement hash of a key: the first 8 bytes of its SHA-256.
///
/// The hash covers the key value only, not the table, so tables that share a
/// key space (a user and that user's profile row) land on the same shard.
pub fn key_hash(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Jump consistent hash (Lamping & Veach, 2014): the bucket in `0..buckets` of `hash`.
pub fn jump(mut hash: u64, buckets: usize) -> usize {
    assert!(buckets > 0, "jump hash needs at least one bucket");
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < buckets as i64 {
        bucket = next;
        hash = hash.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((hash >> 33) + 1) as f64)) as i64;
    }
    bucket as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(key: &str, shards: usize) -> usize {
        jump(key_hash(key), shards)
    }

    #[test]
    fn adding_a_shard_moves_about_one_in_n_plus_one() {
        let keys = 20_000;
        for n in [3usize, 4, 8] {
            let moved = (0..keys)
                .filter(|i| {
                    let k = format!("user-{i}");
                    home(&k, n) != home(&k, n + 1)
                })
                .count();
            let expected = keys as f64 / (n + 1) as f64;
            let ratio = moved as f64 / expected;
            assert!(
                (0.9..1.1).contains(&ratio),
                "n={n}: moved {moved}, expected ~{expected}"
            );
        }
    }

    #[test]
    fn keys_spread_evenly() {
        let mut counts = [0usize; 4];
        for i in 0..8_000 {
            counts[home(&format!("k{i}"), 4)] += 1;
        }
        for c in counts {
            assert!((1_800..2_200).contains(&c), "{counts:?}");
        }
    }
}
