//! A gzip writer that compresses on several threads and still writes one ordinary gzip
//! member, byte-identical whatever the number of threads.
//!
//! Formats: gzip, RFC 1952 (<https://www.rfc-editor.org/rfc/rfc1952>); deflate, RFC 1951
//! (<https://www.rfc-editor.org/rfc/rfc1951>). The technique is pigz's: the input is cut
//! into fixed [`CHUNK`]-byte pieces, each compressed by its own raw-deflate compressor
//! and ended with a sync flush (an empty stored block, so the next piece starts on a byte
//! boundary); the pieces are written in order, then one empty final block (`03 00`), then
//! the CRC-32 and length of the whole input. Any gzip reader reads it as one stream.
//!
//! Because the cut points depend only on the input's length and the compressor (flate2's
//! miniz_oxide backend, the only one enabled) only on the piece and the level, the bytes
//! depend on neither the thread count nor scheduling.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress};

/// Bytes of input per independently compressed piece. Part of the output format: the
/// same input gives other (equally valid) bytes with another value.
pub const CHUNK: usize = 1 << 20;

type Job = (usize, Vec<u8>);
type Done = (usize, io::Result<Vec<u8>>);

pub struct ParallelGzWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    crc: Crc,
    sent: usize,
    written: usize,
    jobs: Option<mpsc::SyncSender<Job>>,
    results: mpsc::Receiver<Done>,
    ready: BTreeMap<usize, Vec<u8>>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGzWriter<W> {
    /// Writes the gzip header (no name, mtime 0, OS 255) and starts `threads` workers.
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        let xfl = match level {
            9.. => 2,
            0 | 1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        let threads = threads.clamp(1, 16);
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, results) = mpsc::channel::<Done>();
        let workers = (0..threads)
            .map(|_| {
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                std::thread::spawn(move || loop {
                    let job = job_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((index, data))) = job else { break };
                    if done_tx.send((index, deflate_piece(&data, level))).is_err() {
                        break;
                    }
                })
            })
            .collect();
        Ok(ParallelGzWriter {
            out,
            buf: Vec::with_capacity(CHUNK),
            crc: Crc::new(),
            sent: 0,
            written: 0,
            jobs: Some(job_tx),
            results,
            ready: BTreeMap::new(),
            workers,
        })
    }

    fn send_piece(&mut self) -> io::Result<()> {
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.crc.update(&piece);
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?;
        jobs.send((self.sent, piece))
            .map_err(|_| io::Error::other("a compression thread stopped"))?;
        self.sent += 1;
        self.drain(false)
    }

    /// Writes every finished piece that is next in order; with `all`, waits for all.
    fn drain(&mut self, all: bool) -> io::Result<()> {
        loop {
            while let Some(piece) = self.ready.remove(&self.written) {
                self.out.write_all(&piece)?;
                self.written += 1;
            }
            if self.written == self.sent {
                return Ok(());
            }
            let next = if all {
                self.results
                    .recv()
                    .map_err(|_| io::Error::other("a compression thread stopped"))?
            } else {
                match self.results.try_recv() {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                }
            };
            let (index, piece) = next;
            self.ready.insert(index, piece?);
        }
    }

    /// Compresses what is left, writes the final block and the trailer, returns the
    /// inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.send_piece()?;
        }
        self.jobs = None;
        self.drain(true)?;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // An empty final block with fixed codes: BFINAL=1, BTYPE=01, end-of-block.
        self.out.write_all(&[0x03, 0x00])?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_piece()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        // Pieces are cut by length only; flushing must not cut one short.
        Ok(())
    }
}

/// One piece as raw deflate, ended by a sync flush.
fn deflate_piece(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // Done when all input is taken and the flush did not run out of room.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Text-like and incompressible parts, so pieces differ in how they compress.
        let mut v = Vec::with_capacity(len);
        let mut x: u32 = 12345;
        while v.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if (v.len() / 70_000) % 3 == 0 {
                v.push((x >> 24) as u8);
            } else {
                v.extend_from_slice(b"def main():\n    return 0\n");
            }
        }
        v.truncate(len);
        v
    }

    fn gz(data: &[u8], threads: usize, write_size: usize) -> Vec<u8> {
        let mut w = ParallelGzWriter::new(Vec::new(), 6, threads).unwrap();
        for part in data.chunks(write_size.max(1)) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_does_not_depend_on_threads_or_write_sizes() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345] {
            let data = sample(len);
            let one = gz(&data, 1, 4096);
            assert_eq!(one, gz(&data, 4, 1 << 17), "len {len}");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(one.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "len {len}: round trip");
            assert_eq!(&one[..4], &[0x1f, 0x8b, 8, 0]);
            assert_eq!(one[9], 255);
        }
    }

    #[test]
    fn gnu_gzip_reads_it_as_one_member() {
        let data = sample(2 * CHUNK + 777);
        let bytes = gz(&data, 2, 65536);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        std::fs::write(&path, &bytes).unwrap();
        let out = match std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
        {
            Ok(o) => o,
            Err(e) => panic!("gzip (the oracle) is not installed: {e}"),
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == data);
        let listing = std::process::Command::new("gzip")
            .arg("-lv")
            .arg(&path)
            .output()
            .unwrap();
        assert!(listing.status.success());
    }
}
