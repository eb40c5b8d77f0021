//! The write-ahead log behind an on-disk sending queue (`sending_queue.storage`).
//!
//! Layout, in `<storage>/<exporter>/`: segment files `<first seq>.wal` (a new one past
//! [`SEGMENT_BYTES`]) holding records, and `ack`, the lowest sequence number not yet done.
//! A record is a 20-byte header — payload length (u32), CRC-32 of the rest (u32), sequence
//! (u64), span count (u32), little-endian — then the payload (an OTLP
//! `ExportTraceServiceRequest`). A segment is deleted once every record in it is done.
//!
//! Durability: records are written with `write(2)` before the sender is answered, so a crashed
//! or killed process loses nothing; the data reaches the disk itself at the next `fsync`, which
//! the queue runs every `fsync_interval` (power loss can cost that much). On open, every
//! segment is read back and checked: a torn or corrupt record ends its segment there — the file
//! is truncated to the last good record and the loss is reported — and the rest is queued again.
//! Records done but above the saved `ack` (out-of-order completions, or done since the last
//! sync: the ack and finished segments are written at each sync, not on the senders' path) are
//! sent again after a crash: at least once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Segment files roll over past this size.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const HEADER: usize = 20;
/// A record larger than this is taken for corruption when read back.
const MAX_RECORD: u32 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("disk queue {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("disk queue is full ({0} bytes)")]
    Full(u64),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A record handed to a consumer.
#[derive(Debug)]
pub struct Record {
    pub seq: u64,
    pub spans: u32,
    pub payload: Vec<u8>,
}

/// What opening found on disk.
#[derive(Debug, Default, PartialEq)]
pub struct Recovery {
    /// Records queued again (not done before the stop).
    pub batches: usize,
    pub spans: u64,
    /// Bytes cut from torn or corrupt segment tails, and where.
    pub truncated_bytes: u64,
    pub truncated: Vec<String>,
}

struct Segment {
    /// Highest sequence in it (None while empty).
    last_seq: Option<u64>,
    path: PathBuf,
    bytes: u64,
}

/// Where an unread record is.
#[derive(Clone)]
struct Pos {
    seq: u64,
    spans: u32,
    segment: PathBuf,
    offset: u64,
    len: u32,
}

struct State {
    segments: VecDeque<Segment>,
    /// Appends go to the last segment through this.
    writer: Option<File>,
    next_seq: u64,
    unread: VecDeque<Pos>,
    /// Records handed out and not done, to give back if their export is abandoned.
    handed: HashMap<u64, Pos>,
    /// Every sequence not done yet (unread or handed out).
    live: BTreeSet<u64>,
    bytes: u64,
    saved_ack: u64,
}

pub struct Wal {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// Serialises collection (the ack file is written through one temporary name).
    maintenance: Mutex<()>,
}

/// A stop saves the ack and deletes what is finished; a crash leaves that to the next open.
impl Drop for Wal {
    fn drop(&mut self) {
        self.collect();
    }
}

fn crc(seq: u64, spans: u32, payload: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(&seq.to_le_bytes());
    c.update(&spans.to_le_bytes());
    c.update(payload);
    c.sum()
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// Reads the records of one segment file; a bad record ends it (returned as the good length).
fn scan(bytes: &[u8]) -> (Vec<(u64, u32, u64, u32)>, usize) {
    let mut out = Vec::new();
    let mut off = 0usize;
    while bytes.len() - off >= HEADER {
        let h = &bytes[off..off + HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let sum = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let seq = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        let spans = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
        let end = off + HEADER + len as usize;
        if len > MAX_RECORD || end > bytes.len() {
            break;
        }
        if crc(seq, spans, &bytes[off + HEADER..end]) != sum {
            break;
        }
        out.push((seq, spans, (off + HEADER) as u64, len));
        off = end;
    }
    (out, off)
}

impl Wal {
    /// Opens (or creates) the log in `dir`, recovering what a previous run left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Wal, Recovery), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ack_path = dir.join("ack");
        let saved_ack = fs::read(&ack_path)
            .ok()
            .and_then(|b| {
                let seq = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
                let sum = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
                (crc(seq, 0, &[]) == sum).then_some(seq)
            })
            .unwrap_or(0);
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let first = name.strip_suffix(".wal")?.parse().ok()?;
                Some((first, e.path()))
            })
            .collect();
        names.sort();
        let mut recovery = Recovery::default();
        let mut state = State {
            segments: VecDeque::new(),
            writer: None,
            next_seq: saved_ack,
            unread: VecDeque::new(),
            handed: HashMap::new(),
            live: BTreeSet::new(),
            bytes: 0,
            saved_ack,
        };
        for (_, path) in names {
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io_err(&path))?;
            let (records, good) = scan(&data);
            if good < data.len() {
                let cut = (data.len() - good) as u64;
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(good as u64))
                    .map_err(io_err(&path))?;
                tracing::warn!(
                    segment = %path.display(),
                    at = good,
                    bytes = cut,
                    "disk queue: torn or corrupt records truncated"
                );
                recovery.truncated_bytes += cut;
                recovery
                    .truncated
                    .push(format!("{}@{good}", path.display()));
            }
            let mut seg = Segment {
                last_seq: None,
                path: path.clone(),
                bytes: good as u64,
            };
            for (seq, spans, offset, len) in records {
                seg.last_seq = Some(seq);
                state.next_seq = state.next_seq.max(seq + 1);
                if seq < saved_ack {
                    continue;
                }
                recovery.batches += 1;
                recovery.spans += spans as u64;
                state.live.insert(seq);
                state.unread.push_back(Pos {
                    seq,
                    spans,
                    segment: path.clone(),
                    offset,
                    len,
                });
            }
            state.bytes += seg.bytes;
            state.segments.push_back(seg);
        }
        let wal = Wal {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(state),
            maintenance: Mutex::new(()),
        };
        wal.collect();
        Ok((wal, recovery))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one record; `Full` when it would take the log past `max_bytes` (an empty log
    /// takes any one record).
    pub fn append(&self, payload: &[u8], spans: u32) -> Result<u64, WalError> {
        self.append_inner(payload, spans, true)
    }

    /// Appends without the size check (the caller admitted the record already).
    pub fn append_unchecked(&self, payload: &[u8], spans: u32) -> Result<u64, WalError> {
        self.append_inner(payload, spans, false)
    }

    fn append_inner(&self, payload: &[u8], spans: u32, check: bool) -> Result<u64, WalError> {
        let mut st = self.lock();
        let record_len = (HEADER + payload.len()) as u64;
        if check && st.bytes > 0 && st.bytes + record_len > self.max_bytes {
            return Err(WalError::Full(self.max_bytes));
        }
        let roll = match st.segments.back() {
            Some(s) => st.writer.is_none() || (s.bytes > 0 && s.bytes + record_len > SEGMENT_BYTES),
            None => true,
        };
        if roll {
            let first_seq = st.next_seq;
            let path = self.dir.join(segment_name(first_seq));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            st.writer = Some(file);
            st.segments.push_back(Segment {
                last_seq: None,
                path,
                bytes: 0,
            });
        }
        let seq = st.next_seq;
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&crc(seq, spans, payload).to_le_bytes());
        header[8..16].copy_from_slice(&seq.to_le_bytes());
        header[16..20].copy_from_slice(&spans.to_le_bytes());
        let State {
            segments, writer, ..
        } = &mut *st;
        let seg = segments.back_mut().expect("a segment was just ensured");
        let file = writer.as_mut().expect("a writer was just ensured");
        let offset = seg.bytes + HEADER as u64;
        let written = file
            .write_all(&header)
            .and_then(|_| file.write_all(payload));
        if let Err(e) = written {
            // A partial record would hide every later one: cut it off and start a new segment.
            let _ = file.set_len(seg.bytes);
            st.writer = None;
            return Err(io_err(&self.dir)(e));
        }
        seg.bytes += record_len;
        seg.last_seq = Some(seq);
        let path = seg.path.clone();
        st.bytes += record_len;
        st.next_seq += 1;
        st.live.insert(seq);
        st.unread.push_back(Pos {
            seq,
            spans,
            segment: path,
            offset,
            len: payload.len() as u32,
        });
        Ok(seq)
    }

    /// The oldest record not yet handed out; an unreadable one comes back as its sequence and
    /// span count with the error.
    pub fn next(&self) -> Option<Result<Record, (u64, u32, WalError)>> {
        let pos = {
            let mut st = self.lock();
            let pos = st.unread.pop_front()?;
            st.handed.insert(pos.seq, pos.clone());
            pos
        };
        let read = || -> io::Result<Vec<u8>> {
            let mut f = File::open(&pos.segment)?;
            f.seek(SeekFrom::Start(pos.offset))?;
            let mut payload = vec![0u8; pos.len as usize];
            f.read_exact(&mut payload)?;
            Ok(payload)
        };
        Some(
            read()
                .map(|payload| Record {
                    seq: pos.seq,
                    spans: pos.spans,
                    payload,
                })
                .map_err(|e| (pos.seq, pos.spans, io_err(&pos.segment)(e))),
        )
    }

    /// Marks a record handed out by [`Wal::next`] as finished (sent or counted failed). Only
    /// memory changes here: its segment goes and the ack moves at the next [`Wal::sync`], off
    /// the senders' path (a crash before then sends the record again: at least once).
    pub fn done(&self, seq: u64) {
        let mut st = self.lock();
        st.handed.remove(&seq);
        st.live.remove(&seq);
    }

    /// Gives a record handed out back to the front of the queue (its export was abandoned).
    pub fn requeue(&self, seq: u64) {
        let mut st = self.lock();
        if let Some(pos) = st.handed.remove(&seq) {
            st.unread.push_front(pos);
        }
    }

    /// Deletes fully-done segments and saves the new low-water mark when it moved. The files
    /// are touched outside the state lock, so appends never wait on a rename or an unlink.
    fn collect(&self) {
        let _serial = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        let (finished, low) = {
            let mut st = self.lock();
            let low = st.live.first().copied().unwrap_or(st.next_seq);
            let mut finished = Vec::new();
            while let Some(seg) = st.segments.front() {
                let is_writer = st.segments.len() == 1 && st.writer.is_some();
                let done = match seg.last_seq {
                    Some(last) => last < low,
                    None => !is_writer,
                };
                if !done {
                    break;
                }
                let seg = st.segments.pop_front().expect("a front segment");
                st.bytes -= seg.bytes;
                if is_writer {
                    st.writer = None;
                }
                finished.push(seg.path);
            }
            (finished, (low != st.saved_ack).then_some(low))
        };
        for path in finished {
            // Its records are all below the ack: a file left behind is skipped and deleted by
            // the next open.
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(segment = %path.display(), error = %e, "disk queue: cannot delete a finished segment");
            }
        }
        if let Some(low) = low {
            let mut buf = [0u8; 12];
            buf[..8].copy_from_slice(&low.to_le_bytes());
            buf[8..].copy_from_slice(&crc(low, 0, &[]).to_le_bytes());
            let tmp = self.dir.join("ack.tmp");
            let saved = fs::write(&tmp, buf).and_then(|_| fs::rename(&tmp, self.dir.join("ack")));
            match saved {
                Ok(()) => self.lock().saved_ack = low,
                Err(e) => tracing::warn!(error = %e, "disk queue: cannot save the ack position"),
            }
        }
    }

    /// Flushes appended records to the disk itself, then deletes finished segments and saves
    /// the ack. Blocking: call it from a blocking thread (or `block_in_place`).
    pub fn sync(&self) -> io::Result<()> {
        let file = match &self.lock().writer {
            Some(f) => Some(f.try_clone()?),
            None => None,
        };
        let synced = file.map_or(Ok(()), |f| f.sync_data());
        self.collect();
        synced
    }

    /// Records not done (queued or being exported).
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records waiting to be handed out.
    pub fn unread(&self) -> usize {
        self.lock().unread.len()
    }

    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &Wal) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(r) = w.next() {
            let r = r.map_err(|(_, _, e)| e).unwrap();
            out.push((r.seq, r.payload));
        }
        out
    }

    #[test]
    fn records_survive_a_reopen_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let (w, rec) = Wal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..5u8 {
            w.append(&[i; 10], 1).unwrap();
        }
        let got = drain(&w);
        assert_eq!(got.len(), 5);
        w.done(0);
        w.done(1);
        w.done(3); // out of order: 2 is not done, so 3 comes back too
        drop(w);
        let (w, rec) = Wal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!((rec.batches, rec.spans, rec.truncated_bytes), (3, 3, 0));
        let seqs: Vec<u64> = drain(&w).iter().map(|r| r.0).collect();
        assert_eq!(seqs, [2, 3, 4]);
        w.requeue(3);
        assert_eq!(drain(&w).iter().map(|r| r.0).collect::<Vec<_>>(), [3]);
        assert_eq!(
            w.append(b"x", 1).unwrap(),
            5,
            "sequence numbers keep rising"
        );
    }

    #[test]
    fn finished_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = Wal::open(dir.path(), 1 << 30).unwrap();
        let big = vec![7u8; (SEGMENT_BYTES / 2) as usize - 100];
        for _ in 0..5 {
            w.append(&big, 1).unwrap();
        }
        let segments = || {
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "wal")
                })
                .count()
        };
        assert_eq!(segments(), 3);
        for (seq, _) in drain(&w) {
            w.done(seq);
        }
        assert_eq!(segments(), 3, "done only marks, in memory");
        w.sync().unwrap();
        assert_eq!(segments(), 0, "every finished segment goes at the sync");
        assert!(w.is_empty());
        assert_eq!(w.bytes(), 0);
        assert_eq!(w.append(b"x", 1).unwrap(), 5);
        assert_eq!(segments(), 1);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = Wal::open(dir.path(), 1 << 30).unwrap();
        for i in 0..3u8 {
            w.append(&[i; 100], 2).unwrap();
        }
        drop(w);
        let seg = dir.path().join(segment_name(0));
        let len = fs::metadata(&seg).unwrap().len();
        // Half a record, as a crash mid-write leaves it, then garbage in the last record.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[0x55; 30]).unwrap();
        drop(f);
        let (w, rec) = Wal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!((rec.batches, rec.truncated_bytes), (3, 30));
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
        drop(w);
        // Flip a byte inside the second record: it and what follows in the segment go.
        let mut data = fs::read(&seg).unwrap();
        data[HEADER * 2 + 100 + 50] ^= 0xff;
        fs::write(&seg, &data).unwrap();
        let (w, rec) = Wal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec.batches, 1);
        assert_eq!(rec.truncated_bytes, 2 * (HEADER as u64 + 100));
        assert_eq!(drain(&w)[0].1, vec![0u8; 100]);
        // New records still go in and come out.
        let seq = w.append(b"after", 1).unwrap();
        assert_eq!(drain(&w), [(seq, b"after".to_vec())]);
    }

    #[test]
    fn full_at_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // Two records of 120 bytes fit, a third does not.
        let (w, _) = Wal::open(dir.path(), 250).unwrap();
        w.append(&[0; 100], 1).unwrap();
        w.append(&[0; 100], 1).unwrap();
        assert!(matches!(w.append(&[0; 100], 1), Err(WalError::Full(250))));
        let (seq, _) = drain(&w).remove(0);
        w.done(seq);
        w.done(seq + 1);
        w.sync().unwrap();
        assert!(w.append(&[0; 100], 1).is_ok(), "room again once done");
    }
}
