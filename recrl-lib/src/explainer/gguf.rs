//! GGUF v3 reader: metadata, tensor directory, and dequantisation of F32, F16, Q8_0, Q4_0 and
//! Q4_1 tensors to f32 (the block layouts of ggml's `ggml-common.h`).

use anyhow::{bail, ensure, Context, Result};
use half::f16;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer type.
    U64(u64),
    /// Any signed integer type.
    I64(i64),
    /// `f32` or `f64`.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(String),
    /// An array of values.
    Array(Vec<Value>),
}

impl Value {
    /// The value as an unsigned integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(v) => Some(*v),
            Value::I64(v) if *v >= 0 => Some(*v as u64),
            _ => None,
        }
    }
    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(v) => Some(*v),
            Value::U64(v) => Some(*v as f64),
            Value::I64(v) => Some(*v as f64),
            _ => None,
        }
    }
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Tensor element types this reader dequantises (ggml type ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 0
    F32,
    /// 1
    F16,
    /// 2: blocks of 32, f16 scale, 4-bit values − 8.
    Q4_0,
    /// 3: blocks of 32, f16 scale and minimum, 4-bit values.
    Q4_1,
    /// 8: blocks of 32, f16 scale, int8 values.
    Q8_0,
}

impl GgmlType {
    fn from_id(id: u32) -> Result<GgmlType> {
        Ok(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            other => bail!(
                "ggml tensor type {other} ({}) is not supported; supported: F32, F16, Q8_0, Q4_0, Q4_1",
                ggml_type_name(other)
            ),
        })
    }

    /// (elements per block, bytes per block).
    fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q8_0 => (32, 34),
        }
    }
}

fn ggml_type_name(id: u32) -> &'static str {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
        "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES.get(id as usize).copied().unwrap_or("unknown")
}

/// Where one tensor lies in the file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// ggml dimensions, fastest-varying first (torch shape = reversed).
    pub dims: Vec<u64>,
    /// Element type.
    pub kind: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (saturating: [`Gguf::parse`] refuses a tensor whose size overflows).
    pub fn numel(&self) -> usize {
        self.checked_numel().unwrap_or(usize::MAX)
    }
    fn checked_numel(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
    }
    /// Torch shape (slowest dimension first).
    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }
    fn byte_len(&self) -> usize {
        let (per, bytes) = self.kind.block();
        (self.numel() / per).saturating_mul(bytes)
    }
}

/// A parsed GGUF file: metadata and tensor directory (tensor data read on demand).
#[derive(Debug)]
pub struct Gguf {
    /// The file.
    pub path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata key → value.
    pub metadata: BTreeMap<String, Value>,
    /// Tensor name → location, in file order of names.
    pub tensors: BTreeMap<String, TensorInfo>,
    bytes: Vec<u8>,
    data_start: usize,
}

impl Gguf {
    /// Reads and parses `path` (the whole file is held in memory).
    pub fn open(path: &Path) -> Result<Gguf> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Gguf::parse(bytes, path)
            .with_context(|| format!("{}: not a readable GGUF file", path.display()))
    }

    /// Parses GGUF bytes (`path` only names the source in errors).
    pub fn parse(bytes: Vec<u8>, path: &Path) -> Result<Gguf> {
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
        };
        ensure!(r.take(4)? == b"GGUF", "bad magic (expected \"GGUF\")");
        let version = r.u32()?;
        ensure!(
            version == 2 || version == 3,
            "GGUF version {version} (supported: 2, 3)"
        );
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty).with_context(|| format!("metadata key {key}"))?;
            metadata.insert(key, value);
        }
        let mut tensors = BTreeMap::new();
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()? as usize;
            ensure!(n_dims <= 4, "tensor {name}: {n_dims} dimensions");
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
            let kind = GgmlType::from_id(r.u32()?).with_context(|| format!("tensor {name}"))?;
            let offset = r.u64()?;
            tensors.insert(name, TensorInfo { dims, kind, offset });
        }
        let align = metadata
            .get("general.alignment")
            .and_then(Value::as_u64)
            .unwrap_or(32) as usize;
        ensure!(
            align.is_power_of_two(),
            "general.alignment = {align} is not a power of two"
        );
        let data_start = r.pos.div_ceil(align) * align;
        for (name, t) in &tensors {
            let (per, _) = t.kind.block();
            let numel = t
                .checked_numel()
                .with_context(|| format!("tensor {name}: dimensions {:?} overflow", t.dims))?;
            ensure!(
                numel % per == 0,
                "tensor {name}: {numel} elements is not whole blocks"
            );
            let end = usize::try_from(t.offset)
                .ok()
                .and_then(|o| data_start.checked_add(o)?.checked_add(t.byte_len()));
            ensure!(
                end.is_some_and(|e| e <= bytes.len()),
                "tensor {name} runs past the end of the file (truncated?)"
            );
        }
        Ok(Gguf {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            bytes,
            data_start,
        })
    }

    /// A metadata value, or an error naming the missing key.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.metadata
            .get(key)
            .with_context(|| format!("{}: metadata key {key} is missing", self.path.display()))
    }

    /// A metadata string array (e.g. `tokenizer.ggml.tokens`).
    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .with_context(|| format!("{key}: not a string"))
                })
                .collect(),
            _ => bail!(
                "{}: metadata key {key} is not an array",
                self.path.display()
            ),
        }
    }

    /// The tensor `name` dequantised to f32, with its torch shape.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, Vec<i64>)> {
        let info = self
            .tensors
            .get(name)
            .with_context(|| format!("{}: tensor {name} is missing", self.path.display()))?;
        let start = self.data_start + info.offset as usize;
        let raw = &self.bytes[start..start + info.byte_len()];
        Ok((dequantize(raw, info.kind, info.numel()), info.shape()))
    }
}

/// Dequantises `n` elements of type `kind` from `raw` (little-endian ggml blocks).
pub fn dequantize(raw: &[u8], kind: GgmlType, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    let half_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    match kind {
        GgmlType::F32 => out.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(raw.chunks_exact(2).map(|c| half_at(c, 0))),
        GgmlType::Q8_0 => {
            for b in raw.chunks_exact(34) {
                let d = half_at(b, 0);
                out.extend(b[2..].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let (qs_at, signed) = if kind == GgmlType::Q4_0 {
                (2, true)
            } else {
                (4, false)
            };
            for b in raw.chunks_exact(qs_at + 16) {
                let d = half_at(b, 0);
                let (m, shift) = if signed {
                    (0.0, 8.0)
                } else {
                    (half_at(b, 2), 0.0)
                };
                let qs = &b[qs_at..];
                out.extend(qs.iter().map(|&q| ((q & 0x0F) as f32 - shift) * d + m));
                out.extend(qs.iter().map(|&q| ((q >> 4) as f32 - shift) * d + m));
            }
        }
    }
    out
}

/// Deepest nesting of metadata arrays accepted (real files nest none).
const MAX_NESTING: usize = 4;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(
            n <= self.bytes.len() - self.pos,
            "unexpected end of file at byte {}",
            self.pos
        );
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u64()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn value(&mut self, ty: u32) -> Result<Value> {
        self.value_at(ty, 0)
    }
    /// A metadata value; `depth` counts the arrays around it (at most [`MAX_NESTING`]).
    fn value_at(&mut self, ty: u32, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U64(self.take(1)?[0] as u64),
            1 => Value::I64(self.take(1)?[0] as i8 as i64),
            2 => Value::U64(u16::from_le_bytes(self.array()?) as u64),
            3 => Value::I64(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::U64(self.u32()? as u64),
            5 => Value::I64(i32::from_le_bytes(self.array()?) as i64),
            6 => Value::F64(f32::from_le_bytes(self.array()?) as f64),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                let item_ty = self.u32()?;
                let n = self.u64()?;
                ensure!(
                    n <= self.bytes.len() as u64,
                    "array of {n} items is longer than the file"
                );
                ensure!(
                    depth < MAX_NESTING,
                    "arrays nested deeper than {MAX_NESTING}"
                );
                Value::Array(
                    (0..n)
                        .map(|_| self.value_at(item_ty, depth + 1))
                        .collect::<Result<_>>()?,
                )
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => bail!("unknown metadata value type {other}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16le(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q4_0_block_by_hand() {
        // d = 0.5; byte j holds low nibble j%16 and high nibble 15 - j%16.
        let mut block = f16le(0.5).to_vec();
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let x = dequantize(&block, GgmlType::Q4_0, 32);
        for j in 0..16 {
            assert_eq!(x[j], (j as f32 - 8.0) * 0.5, "low nibble {j}");
            assert_eq!(x[j + 16], ((15 - j) as f32 - 8.0) * 0.5, "high nibble {j}");
        }
    }

    #[test]
    fn q4_1_block_by_hand() {
        let mut block = f16le(0.25).to_vec();
        block.extend(f16le(-1.0));
        block.extend((0..16u8).map(|j| j | (3 << 4)));
        let x = dequantize(&block, GgmlType::Q4_1, 32);
        assert_eq!(x[0], -1.0);
        assert_eq!(x[15], 15.0 * 0.25 - 1.0);
        assert!(x[16..].iter().all(|&v| v == 3.0 * 0.25 - 1.0));
    }

    #[test]
    fn q8_0_and_f16_by_hand() {
        let mut block = f16le(2.0).to_vec();
        block.extend((0..32i8).map(|j| (j - 16) as u8));
        let x = dequantize(&block, GgmlType::Q8_0, 32);
        assert_eq!(x[0], -32.0);
        assert_eq!(x[31], 30.0);
        let h: Vec<u8> = [1.5f32, -0.125].iter().flat_map(|&v| f16le(v)).collect();
        assert_eq!(dequantize(&h, GgmlType::F16, 2), vec![1.5, -0.125]);
    }

    #[test]
    fn unsupported_type_is_named() {
        let err = GgmlType::from_id(14).unwrap_err().to_string();
        assert!(err.contains("Q6_K"), "{err}");
    }

    #[test]
    fn truncated_file_is_refused() {
        let err = Gguf::parse(b"GGUF\x03\x00\x00\x00".to_vec(), Path::new("x.gguf")).unwrap_err();
        assert!(err.to_string().contains("end of file"), "{err}");
    }
}
