//! TensorBoard event files (`events.out.tfevents.*`), so that `tensorboard --logdir logs`
//! shows every ranker and PPO run next to its JSON-lines log.
//!
//! The format is small and fixed: a file is a sequence of TFRecords (the data's length as a
//! little-endian u64, the masked CRC-32C of those 8 bytes, the data, the masked CRC-32C of the
//! data), each holding one `Event` protocol buffer: the first has `file_version
//! "brain.Event:2"`, the others a `Summary` with one scalar (`simple_value`). Written here by
//! hand (about a hundred lines with the CRC) rather than through a crate: the Rust TensorBoard
//! writers on crates.io (`tensorboard-rs`, `tboard`) are unmaintained or pull in a protobuf
//! code generator and its build step for these three messages. The bytes are checked against
//! files written by TensorBoard's own Python writer (`scripts/fixtures/tensorboard_reference.py`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Appends scalar events to one event file.
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// A new event file in `dir` (created if missing), named as TensorBoard's writers name them
    /// (`events.out.tfevents.<seconds>.<host>`, with `.<n>` added if taken), opened with the
    /// version event. Every run session gets its own file; TensorBoard reads all of a folder's.
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        EventWriter::create_at(dir, now(), &crate::io::hostname())
    }

    /// [`EventWriter::create`] with the wall time and host name given (tests).
    pub fn create_at(dir: &Path, wall_time: f64, host: &str) -> std::io::Result<EventWriter> {
        std::fs::create_dir_all(dir)?;
        let base = format!("events.out.tfevents.{}.{host}", wall_time as u64);
        let path = (0..)
            .map(|i| match i {
                0 => dir.join(&base),
                i => dir.join(format!("{base}.{i}")),
            })
            .find(|p| !p.exists())
            .expect("some suffix is free");
        let mut w = EventWriter {
            file: BufWriter::new(File::create(&path)?),
            path,
        };
        w.record(&event(wall_time, 0, Body::Version("brain.Event:2")))?;
        w.file.flush()?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One scalar event per `(tag, value)` at `step`, stamped now; then a flush (so a killed
    /// run keeps every whole step). Non-finite values are skipped.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> std::io::Result<()> {
        self.scalars_at(step, now(), values)
    }

    /// [`EventWriter::scalars`] with the wall time given (tests).
    pub fn scalars_at(
        &mut self,
        step: i64,
        wall_time: f64,
        values: &[(&str, f64)],
    ) -> std::io::Result<()> {
        for &(tag, v) in values.iter().filter(|(_, v)| v.is_finite()) {
            self.record(&event(wall_time, step, Body::Scalar(tag, v as f32)))?;
        }
        self.file.flush()
    }

    /// Writes one TFRecord around `data`.
    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.file.write_all(&len)?;
        self.file.write_all(&masked_crc(&len).to_le_bytes())?;
        self.file.write_all(data)?;
        self.file.write_all(&masked_crc(data).to_le_bytes())
    }
}

/// What an event carries.
enum Body<'a> {
    /// `file_version` (field 3).
    Version(&'a str),
    /// `summary` (field 5) with one value: `tag` (1) and `simple_value` (2).
    Scalar(&'a str, f32),
}

/// An `Event` message (proto3: zero `wall_time` and `step` are not written).
fn event(wall_time: f64, step: i64, body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    if wall_time != 0.0 {
        out.push(0x09); // field 1, 64-bit
        out.extend(wall_time.to_le_bytes());
    }
    if step != 0 {
        out.push(0x10); // field 2, varint
        varint(&mut out, step as u64);
    }
    match body {
        Body::Version(v) => bytes_field(&mut out, 3, v.as_bytes()),
        Body::Scalar(tag, v) => {
            let mut value = Vec::new();
            bytes_field(&mut value, 1, tag.as_bytes());
            value.push(0x15); // field 2, 32-bit
            value.extend(v.to_le_bytes());
            let mut summary = Vec::new();
            bytes_field(&mut summary, 1, &value);
            bytes_field(&mut out, 5, &summary);
        }
    }
    out
}

/// A length-delimited field.
fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), masked as TFRecord masks it.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0x82F6_3B78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value_and_varints() {
        // The CRC-32C check value (RFC 3720, B.4): "123456789" → 0xE3069283.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
    }
}
