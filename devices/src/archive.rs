//! Every byte received from an instrument, kept on disk so any reading can be traced and a
//! day replayed with `foodgate ingest`.
//!
//! Files are `<root>/<instrument>/YYYY-MM-DD.bin` (local day of the configured offset);
//! when a file reaches the size bound the day continues in `YYYY-MM-DD.1.bin`, `.2.bin`…
//! Writes are plain appends of what each read returned: instrument lines are slow (9600
//! baud is under 1 KiB/s), so a blocking append is cheaper than a writer task.

use chrono::{FixedOffset, Utc};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Default bound of one archive file.
pub const DEFAULT_MAX_FILE: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
struct OpenFile {
    day: String,
    index: u32,
    file: File,
    size: u64,
}

/// The raw archive of one instrument.
#[derive(Debug)]
pub struct RawArchive {
    dir: PathBuf,
    offset: FixedOffset,
    max_file: u64,
    current: Mutex<Option<OpenFile>>,
}

/// Instrument ids become directory names: anything but `[A-Za-z0-9._-]` is replaced.
fn safe_name(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        format!("_{s}")
    } else {
        s
    }
}

impl RawArchive {
    /// The archive of `instrument` under `root` (normally `<data_dir>/raw`).
    pub fn new(root: &Path, instrument: &str, offset: FixedOffset, max_file: u64) -> Self {
        RawArchive {
            dir: root.join(safe_name(instrument)),
            offset,
            max_file: max_file.max(1),
            current: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, day: &str, index: u32) -> PathBuf {
        if index == 0 {
            self.dir.join(format!("{day}.bin"))
        } else {
            self.dir.join(format!("{day}.{index}.bin"))
        }
    }

    fn open(&self, day: &str, mut index: u32) -> io::Result<OpenFile> {
        fs::create_dir_all(&self.dir)?;
        loop {
            let path = self.path(day, index);
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if size < self.max_file {
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                return Ok(OpenFile {
                    day: day.to_string(),
                    index,
                    file,
                    size,
                });
            }
            index += 1;
        }
    }

    /// Append `bytes` to today's file; the path written is returned.
    pub fn append(&self, bytes: &[u8]) -> io::Result<PathBuf> {
        let day = Utc::now()
            .with_timezone(&self.offset)
            .format("%Y-%m-%d")
            .to_string();
        let mut guard = self
            .current
            .lock()
            .map_err(|_| io::Error::other("archive lock poisoned"))?;
        let reopen = match &*guard {
            None => Some(0),
            Some(c) if c.day != day => Some(0),
            Some(c) if c.size >= self.max_file => Some(c.index + 1),
            Some(_) => None,
        };
        if let Some(index) = reopen {
            *guard = Some(self.open(&day, index)?);
        }
        let Some(cur) = guard.as_mut() else {
            return Err(io::Error::other("archive file not open"));
        };
        cur.file.write_all(bytes)?;
        cur.size += bytes.len() as u64;
        Ok(self.path(&cur.day, cur.index))
    }
}
