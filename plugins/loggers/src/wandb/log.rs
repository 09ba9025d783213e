//! W&B's transaction log, `run-<id>.wandb`: the file `wandb sync` reads to upload an offline
//! run.
//!
//! The file starts with a 7-byte header (`:W&B`, the magic `0xBEE1` as a little-endian `u16`,
//! version 0) and is then LevelDB's log format: 32 KiB blocks (the header takes the first
//! block's first 7 bytes) of chunks, each a 7-byte chunk header (the CRC-32 of the chunk type
//! byte then the data, as a little-endian `u32`; the data length as a `u16`; the type) and the
//! data. A record that fits in what is left of the block is one `FULL` chunk; a longer one is
//! split into `FIRST`, `MIDDLE`... and `LAST` chunks across blocks. Fewer than 7 bytes left in a
//! block are zero padding. Each record is a `wandb_internal.Record` ([`super::proto`]).
//!
//! Chunks are appended one write each and not synced: a reader stops at a torn last record, as
//! with the logs W&B's own SDK writes.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use clshost_plugin_api::PluginError;
use prost::Message;

use super::proto::{Record, RecordInfo, RecordType};

/// The file header: `:W&B`, the magic `0xBEE1` (little-endian), version 0.
pub const FILE_HEADER: [u8; 7] = [b':', b'W', b'&', b'B', 0xe1, 0xbe, 0];
/// A block's size.
pub const BLOCK: usize = 32 * 1024;
/// A chunk header's size.
pub const CHUNK_HEADER: usize = 7;

/// A record in one chunk.
const FULL: u8 = 1;
/// The first chunk of a split record.
const FIRST: u8 = 2;
/// A middle chunk of a split record.
const MIDDLE: u8 = 3;
/// The last chunk of a split record.
const LAST: u8 = 4;

/// The chunks of `data` written from offset `at` of a block (at least [`CHUNK_HEADER`] bytes
/// before the block's end), with the zero padding of blocks too full for another chunk;
/// returns the bytes and the offset in the block after them.
pub fn chunks(data: &[u8], mut at: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(data.len() + CHUNK_HEADER);
    let mut rest = data;
    let mut first = true;
    loop {
        let room = BLOCK - at - CHUNK_HEADER;
        let (piece, tail) = rest.split_at(rest.len().min(room));
        let kind = match (first, tail.is_empty()) {
            (true, true) => FULL,
            (true, false) => FIRST,
            (false, false) => MIDDLE,
            (false, true) => LAST,
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(piece);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&(piece.len() as u16).to_le_bytes());
        out.push(kind);
        out.extend_from_slice(piece);
        at += CHUNK_HEADER + piece.len();
        if BLOCK - at < CHUNK_HEADER {
            out.resize(out.len() + BLOCK - at, 0);
            at = 0;
        }
        if tail.is_empty() {
            return (out, at);
        }
        rest = tail;
        first = false;
    }
}

/// An open transaction log.
#[derive(Debug)]
pub struct TransactionLog {
    file: File,
    path: PathBuf,
    /// The run's id, each record's stream.
    run_id: String,
    /// The number of the next record.
    next: i64,
    /// Where the next chunk starts in its block.
    at: usize,
}

impl TransactionLog {
    /// Creates the log at `path` for the run `run_id` and writes its header.
    pub fn create(path: &Path, run_id: &str) -> Result<TransactionLog, PluginError> {
        let mut file = File::create_new(path).map_err(|e| PluginError::io_at(path, e))?;
        file.write_all(&FILE_HEADER)
            .map_err(|e| PluginError::io_at(path, e))?;
        Ok(TransactionLog {
            file,
            path: path.to_path_buf(),
            run_id: run_id.to_string(),
            next: 1,
            at: FILE_HEADER.len(),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` as the next record of the run.
    pub fn append(&mut self, record: RecordType) -> Result<(), PluginError> {
        let record = Record {
            num: self.next,
            record_type: Some(record),
            info: Some(RecordInfo {
                stream_id: self.run_id.clone(),
            }),
        };
        let (bytes, at) = chunks(&record.encode_to_vec(), self.at);
        self.file
            .write_all(&bytes)
            .map_err(|e| PluginError::io_at(&self.path, e))?;
        self.next += 1;
        self.at = at;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads chunks back from offset `at` of a block: the records' data.
    fn reassemble(mut bytes: &[u8], mut at: usize) -> Vec<Vec<u8>> {
        let (mut records, mut current) = (Vec::new(), Vec::new());
        while !bytes.is_empty() {
            if BLOCK - at < CHUNK_HEADER {
                assert!(
                    bytes[..BLOCK - at].iter().all(|&b| b == 0),
                    "padding is zeros"
                );
                bytes = &bytes[BLOCK - at..];
                at = 0;
                continue;
            }
            let crc = u32::from_le_bytes(bytes[..4].try_into().unwrap());
            let len = u16::from_le_bytes(bytes[4..6].try_into().unwrap()) as usize;
            let kind = bytes[6];
            let data = &bytes[CHUNK_HEADER..CHUNK_HEADER + len];
            let mut check = crc32fast::Hasher::new();
            check.update(&[kind]);
            check.update(data);
            assert_eq!(check.finalize(), crc);
            current.extend_from_slice(data);
            if matches!(kind, FULL | LAST) {
                records.push(std::mem::take(&mut current));
            }
            bytes = &bytes[CHUNK_HEADER + len..];
            at += CHUNK_HEADER + len;
        }
        records
    }

    /// The file header and first record of a log W&B's own SDK wrote
    /// (`scripts/fixtures/wandb_sdk_log.py`): the same header, and the same chunk for the same
    /// record data.
    #[test]
    fn the_framing_matches_what_wandbs_sdk_writes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wandb/sdk-first-record.wandb");
        let sdk = std::fs::read(path).unwrap();
        assert_eq!(sdk[..7], FILE_HEADER);
        let data = &sdk[7 + CHUNK_HEADER..];
        let (ours, at) = chunks(data, FILE_HEADER.len());
        assert_eq!(ours, sdk[7..]);
        assert_eq!(at, sdk.len());
        let record = Record::decode(data).unwrap();
        assert_eq!(record.num, 1);
        assert!(matches!(record.record_type, Some(RecordType::Header(_))));
    }

    #[test]
    fn records_split_across_blocks_and_read_back() {
        let small = vec![7u8; 100];
        let big: Vec<u8> = (0..3 * BLOCK).map(|i| (i % 251) as u8).collect();
        let mut bytes = Vec::new();
        let mut at = FILE_HEADER.len();
        for data in [&small, &big, &small] {
            let (out, next) = chunks(data, at);
            bytes.extend_from_slice(&out);
            at = next;
        }
        assert_eq!((FILE_HEADER.len() + bytes.len()) % BLOCK, at);
        assert_eq!(
            reassemble(&bytes, FILE_HEADER.len()),
            [small.clone(), big, small]
        );
        // A chunk that leaves fewer than 7 bytes in its block pads the block.
        let (out, next) = chunks(&[1; 10], BLOCK - CHUNK_HEADER - 10 - 3);
        assert_eq!((out.len(), next), (CHUNK_HEADER + 10 + 3, 0));
    }
}
