use bytes::{Buf, Bytes, BytesMut};
use swarmmq_crypto::{BatchCipher, CryptoError, KeyRing, SALT_LEN, TAG_LEN};

use super::header::{BatchHeader, CRC_START, HEADER_LEN, le_u32};
use super::record::{Record, RecordMeta, RecordSpan, decode_record};
use crate::StorageError;

/// A whole batch read back, with its header validated and its CRC checked. Records are
/// decoded lazily by the iterators, which validate them as they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    bytes: Bytes,
    header: BatchHeader,
}

impl Batch {
    /// Validates `bytes` as exactly one batch: header consistency, length and CRC.
    pub fn parse(bytes: Bytes) -> Result<Self, StorageError> {
        let header = BatchHeader::parse(&bytes)?;
        if header.length as usize != bytes.len() {
            return Err(StorageError::Malformed(
                "batch length field does not match its bytes",
            ));
        }
        let batch = Batch { bytes, header };
        if !batch.verify_crc() {
            return Err(StorageError::Malformed("batch CRC mismatch"));
        }
        Ok(batch)
    }

    /// A batch whose bytes this process stamped or already validated and kept in
    /// memory since (the tail cache): neither the header nor the CRC is checked again.
    pub(crate) fn from_trusted(bytes: Bytes, header: BatchHeader) -> Self {
        Batch { bytes, header }
    }

    /// Whether the stored CRC matches the bytes (always true for a parsed batch unless
    /// the bytes were swapped underneath, which `Bytes` prevents).
    pub fn verify_crc(&self) -> bool {
        crc32c::crc32c(self.bytes.get(CRC_START..).unwrap_or(&[])) == self.header.crc
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    pub fn next_offset(&self) -> u64 {
        self.header.next_offset()
    }

    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    pub fn term(&self) -> u64 {
        self.header.term
    }

    pub fn first_timestamp_ms(&self) -> i64 {
        self.header.first_timestamp_ms
    }

    pub fn max_timestamp_ms(&self) -> i64 {
        self.header.max_timestamp_ms
    }

    pub fn producer_id(&self) -> u64 {
        self.header.producer_id
    }

    pub fn producer_seq(&self) -> u64 {
        self.header.producer_seq
    }

    pub fn key_id(&self) -> u32 {
        self.header.key_id
    }

    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.header.salt
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The stored bytes (to send to a follower or a client as they are).
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Record metadata in offset order, without decrypting anything.
    pub fn records_meta(&self) -> RecordsMeta {
        RecordsMeta {
            bytes: self.bytes.clone(),
            header: self.header,
            pos: HEADER_LEN,
            index: 0,
            done: false,
        }
    }

    /// Decrypted records in offset order. The batch body is copied once into a buffer
    /// that is decrypted in place; each payload is a slice of it (no per-record copy).
    pub fn decrypt_records(&self, ring: &KeyRing) -> DecryptRecords {
        let cipher = BatchCipher::for_read(ring, self.header.key_id, &self.header.salt);
        DecryptRecords {
            meta: self.records_meta(),
            cipher: Some(cipher),
            work: BytesMut::new(),
            work_pos: HEADER_LEN,
        }
    }
}

/// Iterator of [`RecordMeta`]; stops after the first error.
pub struct RecordsMeta {
    bytes: Bytes,
    header: BatchHeader,
    pos: usize,
    index: u32,
    done: bool,
}

impl RecordsMeta {
    fn next_raw(&mut self) -> Option<Result<(RecordMeta, RecordSpan, u32), StorageError>> {
        if self.done {
            return None;
        }
        if self.index == self.header.record_count {
            self.done = true;
            if self.pos != self.bytes.len() {
                return Some(Err(StorageError::Malformed("bytes after the last record")));
            }
            return None;
        }
        let index = self.index;
        match decode_record(
            &self.bytes,
            self.pos,
            index,
            self.header.base_offset,
            self.header.first_timestamp_ms,
        ) {
            Ok((meta, span)) => {
                self.pos = span.payload_end + TAG_LEN;
                self.index += 1;
                Some(Ok((meta, span, index)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Iterator for RecordsMeta {
    type Item = Result<RecordMeta, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_raw().map(|r| r.map(|(m, _, _)| m))
    }
}

/// Iterator of decrypted [`Record`]s; stops after the first error.
pub struct DecryptRecords {
    meta: RecordsMeta,
    cipher: Option<Result<BatchCipher, CryptoError>>,
    /// Copy of the batch from `work_pos` on, decrypted record by record.
    work: BytesMut,
    work_pos: usize,
}

impl DecryptRecords {
    fn step(&mut self) -> Option<Result<Record, StorageError>> {
        let cipher = match self.cipher.as_ref()? {
            Ok(c) => c,
            Err(e) => {
                let e = e.clone();
                self.cipher = None;
                return Some(Err(e.into()));
            }
        };
        let (meta, span, index) = match self.meta.next_raw()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let bytes = &self.meta.bytes;
        if self.work_pos == HEADER_LEN && self.work.is_empty() {
            self.work = BytesMut::from(bytes.get(HEADER_LEN..).unwrap_or(&[]));
        }
        let end = span.payload_end + TAG_LEN;
        let (Some(skip), Some(rec_len)) = (
            span.start.checked_sub(self.work_pos),
            end.checked_sub(span.start),
        ) else {
            return Some(Err(StorageError::Malformed("record spans out of order")));
        };
        if skip + rec_len > self.work.len() {
            return Some(Err(StorageError::Malformed("record spans out of order")));
        }
        self.work.advance(skip);
        let mut chunk = self.work.split_to(rec_len);
        self.work_pos = end;
        let (ps, pe) = (
            span.payload_start - span.start,
            span.payload_end - span.start,
        );
        let aad = bytes.get(span.start..span.payload_start).unwrap_or(&[]);
        let mut tag = [0u8; TAG_LEN];
        if let Some(t) = bytes.get(span.payload_end..end) {
            tag.copy_from_slice(t);
        }
        let Some(ct) = chunk.get_mut(ps..pe) else {
            return Some(Err(StorageError::Malformed("record payload out of bounds")));
        };
        if let Err(e) = cipher.open(index, aad, ct, &tag) {
            return Some(Err(e.into()));
        }
        chunk.advance(ps);
        chunk.truncate(pe - ps);
        Some(Ok(Record {
            meta,
            payload: chunk.freeze(),
        }))
    }
}

impl Iterator for DecryptRecords {
    type Item = Result<Record, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.step();
        if matches!(item, Some(Err(_))) {
            self.cipher = None;
        }
        item
    }
}

/// Splits a buffer holding whole batches back to back into validated batches; stops
/// after the first error.
pub fn decode_batches(bytes: Bytes) -> DecodeBatches {
    DecodeBatches {
        bytes,
        failed: false,
    }
}

/// Iterator returned by [`decode_batches`].
pub struct DecodeBatches {
    bytes: Bytes,
    failed: bool,
}

impl Iterator for DecodeBatches {
    type Item = Result<Batch, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.bytes.is_empty() {
            return None;
        }
        let len = le_u32(&self.bytes, 0) as usize;
        if self.bytes.len() < 4 || len < HEADER_LEN || len > self.bytes.len() {
            self.failed = true;
            return Some(Err(StorageError::Malformed("batch length out of bounds")));
        }
        let one = self.bytes.split_to(len);
        let r = Batch::parse(one);
        self.failed = r.is_err();
        Some(r)
    }
}
