//! Reading raw files: plain or gzip, UTF-8 or Latin-1, line by line or as CSV records, with
//! errors that name the file and line, and a budget of tolerated malformed lines.

use super::raw::Malformed;
use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Text encoding of a raw file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8; invalid bytes are an error.
    Utf8,
    /// ISO-8859-1: every byte is one character.
    Latin1,
}

thread_local! {
    /// Where this thread's loaders count the raw bytes they read (see [`count_bytes_into`]).
    static BYTES_READ: std::cell::RefCell<Option<Arc<AtomicU64>>> = const { std::cell::RefCell::new(None) };
}

/// Makes every file this thread opens from now on add the bytes it reads (on disk, before
/// decompression) to `counter`, so another thread can show progress.
pub fn count_bytes_into(counter: Arc<AtomicU64>) {
    BYTES_READ.with(|c| *c.borrow_mut() = Some(counter));
}

/// A reader that adds what it reads to a shared counter.
struct Counted<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path` for reading, through a gzip decoder when it ends in `.gz`.
pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    anyhow::ensure!(
        !path.is_dir(),
        "{} is a folder; a data file of that name should be there",
        path.display()
    );
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let file: Box<dyn Read> = match BYTES_READ.with(|c| c.borrow().clone()) {
        Some(counter) => Box::new(Counted {
            inner: file,
            counter,
        }),
        None => Box::new(file),
    };
    let reader = BufReader::with_capacity(1 << 20, file);
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// Characters of a field or line that an error message shows.
pub const EXCERPT_CHARS: usize = 80;

/// `text` for an error message: whole when short, else its first [`EXCERPT_CHARS`] characters
/// and how long it is (a 10 MB malformed line is not echoed whole).
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

/// Decodes one line or field; `None` for invalid UTF-8.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Option<String> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_string),
        Encoding::Latin1 => Some(bytes.iter().map(|&b| b as char).collect()),
    }
}

/// A place in a file, displayed as `file:line`; formatted only when an error needs it.
#[derive(Debug, Clone, Copy)]
pub struct At<'a>(pub &'a Path, pub usize);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0.display(), self.1)
    }
}

/// A text file read line by line with 1-based line numbers.
pub struct Lines {
    path: PathBuf,
    reader: BufReader<Box<dyn Read>>,
    encoding: Encoding,
    line: usize,
    buf: Vec<u8>,
}

impl Lines {
    /// Opens `path` (plain or `.gz`).
    pub fn open(path: &Path, encoding: Encoding) -> Result<Self> {
        Ok(Lines {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, open(path)?),
            encoding,
            line: 0,
            buf: Vec::new(),
        })
    }

    /// The next line without its line ending, with its number; `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<(usize, String)>> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf).map_err(|e| {
            anyhow!(
                "{}:{}: read failed after this line ({e}); a truncated or corrupt gzip file?",
                self.path.display(),
                self.line
            )
        })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        let text = decode(&self.buf, self.encoding).ok_or_else(|| {
            anyhow!(
                "{}:{}: not valid UTF-8 (wrong encoding? this format is read as UTF-8)",
                self.path.display(),
                self.line
            )
        })?;
        Ok(Some((self.line, text)))
    }

    /// Where the reader is (`file:line` when displayed).
    pub fn at(&self) -> At<'_> {
        At(&self.path, self.line)
    }
}

/// A CSV reader over a plain or gzip file with the given delimiter; quotes may be doubled
/// (`""`) or backslash-escaped (`\"`), and rows may have any number of fields.
pub fn csv_reader(
    path: &Path,
    delimiter: u8,
    has_header: bool,
) -> Result<csv::Reader<Box<dyn Read>>> {
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(has_header)
        .flexible(true)
        .double_quote(true)
        .escape(Some(b'\\'))
        .from_reader(Box::new(CrlfToLf::new(open(path)?)) as Box<dyn Read>))
}

/// Turns `\r\n` into `\n`. The csv crate counts a CRLF record as starting on the previous
/// line; without the `\r`, record line numbers are exact (Book-Crossing files are CRLF).
pub struct CrlfToLf<R> {
    inner: R,
    held_cr: bool,
}

impl<R: Read> CrlfToLf<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        CrlfToLf {
            inner,
            held_cr: false,
        }
    }
}

impl<R: Read> Read for CrlfToLf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            // leave room for a `\r` held back from the previous read
            let start = usize::from(self.held_cr);
            if out.is_empty() {
                return Ok(0);
            }
            if out.len() < 2 {
                let msg = "CrlfToLf reads need a buffer of at least 2 bytes";
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
            }
            let n = self.inner.read(&mut out[start..])?;
            if start == 1 {
                out[0] = b'\r';
            }
            let mut end = start + n;
            if n == 0 {
                self.held_cr = false;
                return Ok(end); // a lone `\r` at the very end stays
            }
            self.held_cr = out[end - 1] == b'\r';
            if self.held_cr {
                end -= 1; // it may be the first half of a `\r\n` split across reads
            }
            let mut w = 0;
            for r in 0..end {
                if out[r] == b'\r' && r + 1 < end && out[r + 1] == b'\n' {
                    continue;
                }
                out[w] = out[r];
                w += 1;
            }
            if w > 0 {
                return Ok(w);
            }
        }
    }
}

/// Reads the next CSV record into `rec`; errors name the file and line.
pub fn next_record(
    reader: &mut csv::Reader<Box<dyn Read>>,
    rec: &mut csv::ByteRecord,
    path: &Path,
) -> Result<bool> {
    reader.read_byte_record(rec).map_err(|e| {
        let line = e.position().map_or(0, |p| p.line());
        anyhow!(
            "{}:{line}: {e} (a truncated or corrupt file?)",
            path.display()
        )
    })
}

/// Counts a malformed line and fails once more than `max` were seen.
pub fn tolerate(
    malformed: &mut Malformed,
    max: usize,
    at: &dyn std::fmt::Display,
    reason: &str,
) -> Result<()> {
    malformed.count += 1;
    if malformed.examples.len() < 5 {
        malformed.examples.push(format!("{at}: {reason}"));
    }
    if malformed.count > max {
        bail!(
            "{at}: {reason}; more than {max} malformed lines (first: {})",
            malformed.examples.join("; ")
        );
    }
    Ok(())
}

/// Finds `name` in a header row; the error lists the columns that are there.
pub fn column(header: &[String], name: &str, at: &dyn std::fmt::Display) -> Result<usize> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        anyhow!(
            "{at}: missing column `{name}` (columns: {})",
            header.join(", ")
        )
    })
}

/// Reads a headed CSV file (plain or gzip) with `delimiter` and `encoding`, handing `row`
/// the fields of `columns` in that order. Rows with the wrong number of fields count as
/// malformed. UTF-8 (and ASCII Latin-1) fields are borrowed from the record, not copied.
pub fn csv_rows(
    delimiter: u8,
    encoding: Encoding,
    path: &Path,
    columns: &[&str],
    max_malformed: usize,
    raw: &mut super::RawData,
    mut row: impl FnMut(&mut super::RawData, &[&str], &At) -> Result<()>,
) -> Result<()> {
    let mut reader = csv_reader(path, delimiter, true)?;
    let header: Vec<String> = reader
        .byte_headers()
        .map_err(|e| anyhow!("{}:1: {e}", path.display()))?
        .iter()
        .map(|h| {
            field_text(h, encoding)
                .unwrap_or_default()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    let idx = columns
        .iter()
        .map(|c| column(&header, c, &At(path, 1)))
        .collect::<Result<Vec<_>>>()?;
    let mut rec = csv::ByteRecord::new();
    while next_record(&mut reader, &mut rec, path)? {
        let at = At(path, rec.position().map_or(0, |p| p.line() as usize));
        if rec.len() != header.len() {
            let reason = format!("{} fields, the header has {}", rec.len(), header.len());
            tolerate(&mut raw.malformed, max_malformed, &at, &reason)?;
            continue;
        }
        let cells = idx
            .iter()
            .map(|&i| field_text(&rec[i], encoding))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow!("{at}: not valid UTF-8 (wrong encoding?)"))?;
        let fields: Vec<&str> = cells.iter().map(|c| c.as_ref()).collect();
        row(raw, &fields, &at)?;
    }
    Ok(())
}

/// A field as text: borrowed when it is valid UTF-8 (or ASCII Latin-1), decoded otherwise.
fn field_text(bytes: &[u8], encoding: Encoding) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match (encoding, std::str::from_utf8(bytes)) {
        (Encoding::Utf8, Ok(s)) => Some(Cow::Borrowed(s)),
        (Encoding::Utf8, Err(_)) => None,
        (Encoding::Latin1, Ok(s)) if s.is_ascii() => Some(Cow::Borrowed(s)),
        (Encoding::Latin1, _) => decode(bytes, Encoding::Latin1).map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_becomes_lf_even_across_read_boundaries() {
        let data = b"a\r\nb\r\r\nc\rd\r\n\r".to_vec();
        for chunk in 1..6 {
            // a reader that returns at most `chunk` bytes per call
            struct Chunked(Vec<u8>, usize, usize);
            impl Read for Chunked {
                fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                    let n = self.2.min(out.len()).min(self.0.len() - self.1);
                    out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                    self.1 += n;
                    Ok(n)
                }
            }
            let mut got = Vec::new();
            CrlfToLf::new(Chunked(data.clone(), 0, chunk))
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got, b"a\nb\r\nc\rd\n\r", "chunk {chunk}");
        }
    }
}
