//! Python artifacts for the offline tests, made here byte by byte: wheels (zip with WHEEL
//! and RECORD) and source releases (tar.gz). Hashes are computed independently of graft's
//! own code, so a test that compares them is a real check.
#![allow(dead_code)]

use std::io::{Cursor, Write};

use sha2::{Digest, Sha256};

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A RECORD hash: urlsafe base64 of the sha256, without padding.
pub fn record_hash(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let d = Sha256::digest(data);
    let mut s = String::new();
    for c in d.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

pub const WHEEL_FILE: &[u8] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n";

/// A wheel of `members` (name, bytes) for `{dist}-{version}.dist-info`: its WHEEL file
/// and a RECORD listing every member are added, unless `record` gives RECORD's text.
pub fn wheel_zip(
    dist: &str,
    version: &str,
    members: Vec<(String, Vec<u8>)>,
    record: Option<String>,
) -> Vec<u8> {
    let di = format!("{dist}-{version}.dist-info");
    let mut all = members;
    all.push((format!("{di}/WHEEL"), WHEEL_FILE.to_vec()));
    let record = record.unwrap_or_else(|| {
        let mut r = String::new();
        for (n, d) in &all {
            r.push_str(&format!("{n},sha256={},{}\n", record_hash(d), d.len()));
        }
        r.push_str(&format!("{di}/RECORD,,\n"));
        r
    });
    all.push((format!("{di}/RECORD"), record.into_bytes()));
    let mut buf = Cursor::new(Vec::new());
    let mut zw = zip::ZipWriter::new(&mut buf);
    for (n, d) in all {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        zw.start_file(n, opts).unwrap();
        zw.write_all(&d).unwrap();
    }
    zw.finish().unwrap();
    buf.into_inner()
}

/// A source release: `files` are (path under `top`, bytes, mode), owned by a build user
/// (uid 1000, "zuul") as upstream tarballs are, so that graft must normalise ownership.
pub fn sdist(top: &str, files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(12345);
        h.set_uid(1000);
        h.set_username("zuul").unwrap();
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("{top}/{path}"), *data)
            .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}
