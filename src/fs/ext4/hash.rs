//! Directory-entry name hashes for htree directories: legacy, half-MD4 and TEA, each in
//! its signed-char and unsigned-char variant.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/directory.html#hash-tree-directories>
//! (algorithms as in the kernel's fs/ext4/hash.c and e2fsprogs' lib/ext2fs/dirhash.c).

use super::{Ext4Error, Result};

/// `dx_root_info.hash_version` values (the unsigned ones are chosen by the superblock flag).
pub const LEGACY: u8 = 0;
pub const HALF_MD4: u8 = 1;
pub const TEA: u8 = 2;
pub const LEGACY_UNSIGNED: u8 = 3;
pub const HALF_MD4_UNSIGNED: u8 = 4;
pub const TEA_UNSIGNED: u8 = 5;

fn char_value(c: u8, unsigned: bool) -> u32 {
    if unsigned {
        c as u32
    } else {
        c as i8 as i32 as u32
    }
}

fn legacy(name: &[u8], unsigned: bool) -> u32 {
    let (mut h0, mut h1) = (0x12a3fe2du32, 0x37abe8f9u32);
    for &c in name {
        let mut h = h1.wrapping_add(h0 ^ char_value(c, unsigned).wrapping_mul(7152373));
        if h & 0x8000_0000 != 0 {
            h = h.wrapping_sub(0x7fff_ffff);
        }
        h1 = h0;
        h0 = h;
    }
    h0 << 1
}

fn str2hashbuf(msg: &[u8], buf: &mut [u32], unsigned: bool) {
    let num = buf.len();
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut val = pad;
    let take = msg.len().min(num * 4);
    let mut out = 0;
    for (i, &c) in msg[..take].iter().enumerate() {
        val = char_value(c, unsigned).wrapping_add(val << 8);
        if i % 4 == 3 {
            buf[out] = val;
            out += 1;
            val = pad;
        }
    }
    if out < num {
        buf[out] = val;
        out += 1;
    }
    while out < num {
        buf[out] = pad;
        out += 1;
    }
}

fn half_md4_transform(buf: &mut [u32; 4], inp: &[u32; 8]) {
    let (mut a, mut b, mut c, mut d) = (buf[0], buf[1], buf[2], buf[3]);
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    macro_rules! round {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a.wrapping_add($f($b, $c, $d)).wrapping_add($x);
            $a = $a.rotate_left($s);
        };
    }
    const K2: u32 = 0o13240474631;
    const K3: u32 = 0o15666365641;
    round!(f, a, b, c, d, inp[0], 3);
    round!(f, d, a, b, c, inp[1], 7);
    round!(f, c, d, a, b, inp[2], 11);
    round!(f, b, c, d, a, inp[3], 19);
    round!(f, a, b, c, d, inp[4], 3);
    round!(f, d, a, b, c, inp[5], 7);
    round!(f, c, d, a, b, inp[6], 11);
    round!(f, b, c, d, a, inp[7], 19);
    round!(g, a, b, c, d, inp[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, inp[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, inp[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, inp[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, inp[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, inp[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, inp[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, inp[6].wrapping_add(K2), 13);
    round!(h, a, b, c, d, inp[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, inp[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, inp[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, inp[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, inp[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, inp[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, inp[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, inp[4].wrapping_add(K3), 15);
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

fn tea_transform(buf: &mut [u32; 4], inp: &[u32; 4]) {
    let mut sum = 0u32;
    let (mut b0, mut b1) = (buf[0], buf[1]);
    let (a, b, c, d) = (inp[0], inp[1], inp[2], inp[3]);
    for _ in 0..16 {
        sum = sum.wrapping_add(0x9E3779B9);
        b0 = b0.wrapping_add(
            (b1 << 4).wrapping_add(a) ^ b1.wrapping_add(sum) ^ (b1 >> 5).wrapping_add(b),
        );
        b1 = b1.wrapping_add(
            (b0 << 4).wrapping_add(c) ^ b0.wrapping_add(sum) ^ (b0 >> 5).wrapping_add(d),
        );
    }
    buf[0] = buf[0].wrapping_add(b0);
    buf[1] = buf[1].wrapping_add(b1);
}

/// The major hash of `name` (low bit clear, as stored in dx entries).
pub fn dirhash(version: u8, name: &[u8], seed: &[u32; 4]) -> Result<u32> {
    let mut buf = [0x67452301u32, 0xefcdab89, 0x98badcfe, 0x10325476];
    if seed.iter().any(|&s| s != 0) {
        buf = *seed;
    }
    let hash = match version {
        LEGACY | LEGACY_UNSIGNED => legacy(name, version == LEGACY_UNSIGNED),
        HALF_MD4 | HALF_MD4_UNSIGNED => {
            let unsigned = version == HALF_MD4_UNSIGNED;
            let mut p = name;
            // An empty name still runs no rounds, as in the kernel.
            while !p.is_empty() {
                let mut inp = [0u32; 8];
                str2hashbuf(p, &mut inp, unsigned);
                half_md4_transform(&mut buf, &inp);
                p = &p[p.len().min(32)..];
            }
            buf[1]
        }
        TEA | TEA_UNSIGNED => {
            let unsigned = version == TEA_UNSIGNED;
            let mut p = name;
            while !p.is_empty() {
                let mut inp = [0u32; 4];
                str2hashbuf(p, &mut inp, unsigned);
                tea_transform(&mut buf, &inp);
                p = &p[p.len().min(16)..];
            }
            buf[0]
        }
        other => {
            return Err(Ext4Error::Unsupported(format!(
                "directory hash version {other} (siphash/casefold)"
            )))
        }
    };
    Ok(hash & !1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known vectors from e2fsprogs 1.47: `debugfs -R 'dx_hash -h <alg> NAME' /dev/null`
    // (default seed, signed chars).
    #[test]
    fn matches_e2fsprogs_vectors() {
        let seed = [0u32; 4];
        let long = b"a-much-longer-file-name-that-spans-two-blocks-of-input.txt";
        let e = "\u{e9}".as_bytes();
        assert_eq!(dirhash(LEGACY, b"hello", &seed).unwrap(), 0x32252546);
        assert_eq!(dirhash(LEGACY, long, &seed).unwrap(), 0x1419f094);
        assert_eq!(dirhash(LEGACY, e, &seed).unwrap(), 0x11083c86);
        assert_eq!(dirhash(HALF_MD4, b"hello", &seed).unwrap(), 0x1746da32);
        assert_eq!(dirhash(HALF_MD4, long, &seed).unwrap(), 0x1f31a8da);
        assert_eq!(dirhash(HALF_MD4, e, &seed).unwrap(), 0x89d4704e);
        assert_eq!(dirhash(TEA, b"hello", &seed).unwrap(), 0x6f5bb1a8);
        assert_eq!(dirhash(TEA, long, &seed).unwrap(), 0xe8eed580);
        assert_eq!(dirhash(TEA, e, &seed).unwrap(), 0x591e9bd6);
    }

    #[test]
    fn hashes_are_stable_and_distinct() {
        let seed = [0u32; 4];
        let a = dirhash(HALF_MD4, b"hello", &seed).unwrap();
        let b = dirhash(HALF_MD4, b"hellp", &seed).unwrap();
        assert_ne!(a, b);
        assert_eq!(a & 1, 0);
        // signed vs unsigned only differ for bytes >= 0x80
        assert_eq!(
            dirhash(TEA, b"abc", &seed).unwrap(),
            dirhash(TEA_UNSIGNED, b"abc", &seed).unwrap()
        );
        assert_ne!(
            dirhash(LEGACY, "é".as_bytes(), &seed).unwrap(),
            dirhash(LEGACY_UNSIGNED, "é".as_bytes(), &seed).unwrap()
        );
        assert!(dirhash(6, b"x", &seed).is_err());
    }
}
