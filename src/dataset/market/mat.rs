//! A small MATLAB MAT-file (level 5) reader: what Lin et al.'s `market_attribute.mat` needs.
//!
//! Supported: both byte orders; top-level variables stored plainly or zlib-compressed
//! (`miCOMPRESSED`, as MATLAB `-v7` and `scipy.io.savemat(do_compression=True)` write them); numeric
//! arrays of any real class, whatever integer or float type they are stored as (MATLAB stores small
//! integral doubles as `miUINT8`), read as `f64`; char arrays stored as UTF-8, UTF-16, UTF-32 or
//! 8-bit codes; cell arrays; struct arrays. Not supported (a clear error): MAT v7.3 (HDF5), complex,
//! sparse, object and function-handle arrays. The `matfile` crate reads numeric arrays only.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::ZlibDecoder;

/// Why a MAT file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MatError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a level-5 MAT file.
    #[error("{path}: not a MAT-file version 5: {reason}")]
    NotMat5 {
        /// The file.
        path: PathBuf,
        /// What is wrong with its header.
        reason: String,
    },
    /// A variable or one of its parts is malformed or of an unsupported kind.
    #[error("{path}: {field}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Dotted path of the variable part (`market_attribute.train.age`, `x{3}`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// A MATLAB value.
#[derive(Debug, Clone, PartialEq)]
pub enum MatValue {
    /// A real numeric (or logical) array, converted to `f64`, in column-major order.
    Numeric {
        /// Dimensions.
        dims: Vec<usize>,
        /// Values, column-major.
        data: Vec<f64>,
    },
    /// A char array, in column-major order.
    Char {
        /// Dimensions.
        dims: Vec<usize>,
        /// Characters, column-major.
        chars: Vec<char>,
    },
    /// A cell array, in column-major order.
    Cell {
        /// Dimensions.
        dims: Vec<usize>,
        /// Cells, column-major.
        items: Vec<MatValue>,
    },
    /// A struct array: field names, and for each element (column-major) one value per field.
    Struct {
        /// Dimensions.
        dims: Vec<usize>,
        /// Field names, in file order.
        fields: Vec<String>,
        /// Per element, the values in `fields` order.
        elements: Vec<Vec<MatValue>>,
    },
}

impl MatValue {
    /// A short description of the value's kind and size for error messages (`1x4 char`).
    pub fn describe(&self) -> String {
        let (dims, kind) = match self {
            MatValue::Numeric { dims, .. } => (dims, "numeric"),
            MatValue::Char { dims, .. } => (dims, "char"),
            MatValue::Cell { dims, .. } => (dims, "cell"),
            MatValue::Struct { dims, .. } => (dims, "struct"),
        };
        let size: Vec<String> = dims.iter().map(usize::to_string).collect();
        format!("{} {kind}", size.join("x"))
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        match self {
            MatValue::Numeric { dims, .. }
            | MatValue::Char { dims, .. }
            | MatValue::Cell { dims, .. }
            | MatValue::Struct { dims, .. } => dims,
        }
    }

    /// Field `name` of a 1x1 struct; `None` for anything else or a missing field.
    pub fn field(&self, name: &str) -> Option<&MatValue> {
        match self {
            MatValue::Struct {
                fields, elements, ..
            } if elements.len() == 1 => {
                let index = fields.iter().position(|f| f == name)?;
                elements[0].get(index)
            }
            _ => None,
        }
    }

    /// The text of a char array with at most one row; `None` for anything else.
    pub fn as_text(&self) -> Option<String> {
        match self {
            MatValue::Char { dims, chars } if dims.first().is_none_or(|rows| *rows <= 1) => {
                Some(chars.iter().collect())
            }
            _ => None,
        }
    }
}

/// The variables of a MAT file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatFile {
    variables: Vec<(String, MatValue)>,
}

impl MatFile {
    /// Reads and parses the whole file; a file over [`MAX_BYTES`] is refused unread.
    pub fn open(path: &Path) -> Result<Self, MatError> {
        let io = |source| MatError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_BYTES as u64 + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        if bytes.len() > MAX_BYTES {
            return Err(MatError::NotMat5 {
                path: path.to_path_buf(),
                reason: format!("larger than the {} MiB limit", MAX_BYTES >> 20),
            });
        }
        Self::from_bytes(&bytes, path)
    }

    /// Parses a file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, MatError> {
        Self::parse(bytes).map_err(|fault| match fault {
            Fault::Header(reason) => MatError::NotMat5 {
                path: path.to_path_buf(),
                reason,
            },
            Fault::Part { field, reason } => MatError::Malformed {
                path: path.to_path_buf(),
                field,
                reason,
            },
        })
    }

    /// The variable called `name`.
    pub fn variable(&self, name: &str) -> Option<&MatValue> {
        self.variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value)
    }

    fn parse(bytes: &[u8]) -> Result<Self, Fault> {
        if bytes.len() < HEADER_LEN {
            return Err(Fault::Header(format!(
                "{} bytes, shorter than the 128-byte header",
                bytes.len()
            )));
        }
        let big_endian = match &bytes[126..128] {
            b"IM" => false,
            b"MI" => true,
            other => {
                return Err(Fault::Header(format!(
                    "endian indicator {other:?} is neither \"IM\" nor \"MI\""
                )))
            }
        };
        let order = ByteOrder { big_endian };
        let mut parser = Parser {
            order,
            memory: MAX_BYTES,
            inflate: MAX_BYTES,
        };
        let version = order.u16(&bytes[124..126]);
        if version != 0x0100 {
            return Err(Fault::Header(format!(
                "version 0x{version:04x} (MAT v7.3 files are HDF5: re-save with -v7)"
            )));
        }
        let mut cursor = Cursor {
            bytes,
            pos: HEADER_LEN,
            order,
        };
        let mut variables = Vec::new();
        while cursor.pos < bytes.len() {
            let context = format!("variable #{}", variables.len() + 1);
            // Top-level elements are not padded (scipy's reader agrees).
            let element = cursor.element(&context, false)?;
            let (name, value) = match element.kind {
                MI_COMPRESSED => {
                    let inflated = parser.inflate(element.data, &context)?;
                    let mut inner = Cursor {
                        bytes: &inflated,
                        pos: 0,
                        order,
                    };
                    let element = inner.element(&context, true)?;
                    parser.variable(element, &context)?
                }
                _ => parser.variable(element, &context)?,
            };
            variables.push((name, value));
        }
        Ok(MatFile { variables })
    }
}

const HEADER_LEN: usize = 128;

/// The most a file may hold, its compressed variables inflate to (all together), and its values
/// take in memory: each 128 MiB, far above real annotation files (Market-1501's is 50 KB), so a
/// hostile file stays within half a GiB.
pub const MAX_BYTES: usize = 128 << 20;

/// The deepest nesting of cells and structs (real files nest three or four deep); deeper input
/// is refused before it can exhaust the stack.
pub const MAX_DEPTH: usize = 32;

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

const MX_CELL: u32 = 1;
const MX_STRUCT: u32 = 2;
const MX_CHAR: u32 = 4;
const MX_DOUBLE: u32 = 6;
const MX_UINT64: u32 = 15;
const FLAG_COMPLEX: u32 = 0x800;

/// A parse failure before it is attached to a file name.
enum Fault {
    Header(String),
    Part { field: String, reason: String },
}

fn fault(field: &str, reason: impl Into<String>) -> Fault {
    Fault::Part {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// One data element: its type and payload.
struct Element<'a> {
    kind: u32,
    data: &'a [u8],
}

#[derive(Clone, Copy)]
struct ByteOrder {
    big_endian: bool,
}

impl ByteOrder {
    fn u16(self, b: &[u8]) -> u16 {
        let b = [b[0], b[1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn u64(self, b: &[u8]) -> u64 {
        let b: [u8; 8] = std::array::from_fn(|i| b[i]);
        if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        }
    }

    /// The values of a numeric data element as `f64`.
    fn numbers(self, element: &Element, at: &str) -> Result<Vec<f64>, Fault> {
        let width = match element.kind {
            MI_INT8 | MI_UINT8 => 1,
            MI_INT16 | MI_UINT16 => 2,
            MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
            MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
            other => return Err(fault(at, format!("data type {other} is not numeric"))),
        };
        if !element.data.len().is_multiple_of(width) {
            return Err(fault(
                at,
                format!(
                    "{} bytes is not a whole number of {width}-byte values",
                    element.data.len()
                ),
            ));
        }
        Ok(element
            .data
            .chunks_exact(width)
            .map(|b| match element.kind {
                MI_INT8 => f64::from(b[0] as i8),
                MI_UINT8 => f64::from(b[0]),
                MI_INT16 => f64::from(self.u16(b) as i16),
                MI_UINT16 => f64::from(self.u16(b)),
                MI_INT32 => f64::from(self.u32(b) as i32),
                MI_UINT32 => f64::from(self.u32(b)),
                MI_SINGLE => f64::from(f32::from_bits(self.u32(b))),
                MI_DOUBLE => f64::from_bits(self.u64(b)),
                MI_INT64 => self.u64(b) as i64 as f64,
                _ => self.u64(b) as f64,
            })
            .collect())
    }
}

/// Parses variables within the memory and inflation budgets.
struct Parser {
    order: ByteOrder,
    /// Bytes of memory the values may still take.
    memory: usize,
    /// Bytes compressed variables may still inflate to.
    inflate: usize,
}

impl Parser {
    /// A top-level `miMATRIX` element as a named variable.
    fn variable(&mut self, element: Element, context: &str) -> Result<(String, MatValue), Fault> {
        if element.kind != MI_MATRIX {
            return Err(fault(
                context,
                format!(
                    "data element of type {} where a matrix was expected",
                    element.kind
                ),
            ));
        }
        self.matrix(element.data, context, None, 0)
    }

    /// Parses an `miMATRIX` payload. `path` is the dotted path of this value when it is a struct
    /// field or cell; top-level variables are named by their own array name.
    fn matrix(
        &mut self,
        payload: &[u8],
        context: &str,
        path: Option<String>,
        depth: usize,
    ) -> Result<(String, MatValue), Fault> {
        let empty = MatValue::Numeric {
            dims: vec![0, 0],
            data: Vec::new(),
        };
        let order = self.order;
        let mut cursor = Cursor {
            bytes: payload,
            pos: 0,
            order,
        };
        let at = path.as_deref().unwrap_or(context).to_string();
        if depth > MAX_DEPTH {
            return Err(fault(
                &at,
                format!("cells and structs nested deeper than {MAX_DEPTH}"),
            ));
        }
        // Every value costs its node even when the file spends only a tag on it.
        self.charge(&at, std::mem::size_of::<(String, MatValue)>() + 16)?;
        if payload.is_empty() {
            return Ok((String::new(), empty));
        }
        let flags = cursor.element(&at, true)?;
        if flags.kind != MI_UINT32 || flags.data.len() != 8 {
            return Err(fault(&at, "array flags are not two uint32 values"));
        }
        let flag_word = order.u32(flags.data);
        let class = flag_word & 0xff;
        let dims_element = cursor.element(&at, true)?;
        let dims: Vec<usize> = self
            .numbers(&dims_element, &at)?
            .into_iter()
            .map(|d| {
                if d >= 0.0 && d.fract() == 0.0 {
                    Ok(d as usize)
                } else {
                    Err(fault(&at, format!("bad dimension {d}")))
                }
            })
            .collect::<Result<_, _>>()?;
        let count = dims
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| fault(&at, format!("dimensions {dims:?} overflow")))?;
        self.charge(&at, 8 * dims.len())?;
        let name_element = cursor.element(&at, true)?;
        let name = String::from_utf8_lossy(name_element.data).into_owned();
        let at = path.unwrap_or_else(|| name.clone());
        if flag_word & FLAG_COMPLEX != 0 {
            return Err(fault(&at, "complex arrays are not supported"));
        }
        let value = match class {
            MX_DOUBLE..=MX_UINT64 => {
                let data = self.numbers(&cursor.element(&at, true)?, &at)?;
                check_count(&at, data.len(), count)?;
                MatValue::Numeric { dims, data }
            }
            MX_CHAR => {
                let element = cursor.element(&at, true)?;
                self.charge(&at, 4 * element.data.len())?;
                let chars = chars(order, &element, &at)?;
                check_count(&at, chars.len(), count)?;
                MatValue::Char { dims, chars }
            }
            MX_CELL => {
                let mut items = Vec::new();
                for i in 0..count {
                    let cell = format!("{at}{{{}}}", i + 1);
                    let element = cursor.element(&cell, true)?;
                    items.push(self.nested(element, &cell, depth + 1)?);
                }
                MatValue::Cell { dims, items }
            }
            MX_STRUCT => {
                let length_element = cursor.element(&at, true)?;
                let length = match self.numbers(&length_element, &at)?.as_slice() {
                    [l] if *l >= 1.0 && l.fract() == 0.0 => *l as usize,
                    other => return Err(fault(&at, format!("bad field name length {other:?}"))),
                };
                let names = cursor.element(&at, true)?;
                if !names.data.len().is_multiple_of(length) {
                    return Err(fault(&at, "field names do not fill whole name slots"));
                }
                self.charge(&at, 2 * names.data.len())?;
                let fields: Vec<String> = names
                    .data
                    .chunks(length)
                    .map(|slot| {
                        let end = slot.iter().position(|b| *b == 0).unwrap_or(slot.len());
                        String::from_utf8_lossy(&slot[..end]).into_owned()
                    })
                    .collect();
                // Each element reads its fields from the file; without fields nothing would
                // bound `count`.
                if fields.is_empty() && count > 0 {
                    return Err(fault(
                        &at,
                        format!("a struct array of {count} without fields"),
                    ));
                }
                let mut elements = Vec::new();
                for i in 0..count {
                    self.charge(&at, std::mem::size_of::<Vec<MatValue>>())?;
                    let mut values = Vec::with_capacity(fields.len());
                    for field in &fields {
                        let field_path = if count == 1 {
                            format!("{at}.{field}")
                        } else {
                            format!("{at}({}).{field}", i + 1)
                        };
                        let element = cursor.element(&field_path, true)?;
                        values.push(self.nested(element, &field_path, depth + 1)?);
                    }
                    elements.push(values);
                }
                MatValue::Struct {
                    dims,
                    fields,
                    elements,
                }
            }
            other => {
                return Err(fault(
                    &at,
                    format!(
                        "array class {other} is not supported (only numeric, char, cell, struct)"
                    ),
                ))
            }
        };
        Ok((name, value))
    }

    /// A matrix nested in a cell or struct.
    fn nested(&mut self, element: Element, path: &str, depth: usize) -> Result<MatValue, Fault> {
        if element.kind != MI_MATRIX {
            return Err(fault(
                path,
                format!(
                    "data element of type {} where a matrix was expected",
                    element.kind
                ),
            ));
        }
        Ok(self
            .matrix(element.data, path, Some(path.to_string()), depth)?
            .1)
    }

    /// The values of a numeric data element, charged to the memory budget.
    fn numbers(&mut self, element: &Element, at: &str) -> Result<Vec<f64>, Fault> {
        self.charge(at, 8 * element.data.len())?;
        self.order.numbers(element, at)
    }

    /// Takes `bytes` from the memory budget, or fails naming `at` when the budget is spent.
    fn charge(&mut self, at: &str, bytes: usize) -> Result<(), Fault> {
        self.memory = self.memory.checked_sub(bytes).ok_or_else(|| {
            fault(
                at,
                format!("the file's values take more than {} MiB", MAX_BYTES >> 20),
            )
        })?;
        Ok(())
    }

    /// Inflates a compressed variable within what is left of the inflation budget.
    fn inflate(&mut self, data: &[u8], at: &str) -> Result<Vec<u8>, Fault> {
        let mut inflated = Vec::new();
        ZlibDecoder::new(data)
            .take(self.inflate as u64 + 1)
            .read_to_end(&mut inflated)
            .map_err(|e| fault(at, format!("bad zlib stream: {e}")))?;
        self.inflate = self.inflate.checked_sub(inflated.len()).ok_or_else(|| {
            fault(
                at,
                format!(
                    "compressed variables inflate to more than {} MiB",
                    MAX_BYTES >> 20
                ),
            )
        })?;
        Ok(inflated)
    }
}

/// The characters of a char array's data element.
fn chars(order: ByteOrder, element: &Element, at: &str) -> Result<Vec<char>, Fault> {
    let bad = || fault(at, "char data is not valid text");
    match element.kind {
        MI_UTF8 => Ok(std::str::from_utf8(element.data)
            .map_err(|_| bad())?
            .chars()
            .collect()),
        MI_UINT8 | MI_INT8 => Ok(element.data.iter().map(|b| char::from(*b)).collect()),
        MI_UINT16 | MI_UTF16 => {
            let units = element.data.chunks_exact(2).map(|b| order.u16(b));
            char::decode_utf16(units)
                .collect::<Result<_, _>>()
                .map_err(|_| bad())
        }
        MI_UINT32 | MI_UTF32 => element
            .data
            .chunks_exact(4)
            .map(|b| char::from_u32(order.u32(b)).ok_or_else(bad))
            .collect(),
        other => Err(fault(
            at,
            format!("data type {other} cannot hold characters"),
        )),
    }
}

fn check_count(at: &str, got: usize, want: usize) -> Result<(), Fault> {
    if got == want {
        Ok(())
    } else {
        Err(fault(
            at,
            format!("{got} values stored for an array of {want} elements"),
        ))
    }
}

/// Reads data elements from a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    order: ByteOrder,
}

impl<'a> Cursor<'a> {
    /// The next data element; `padded` elements start on 8-byte boundaries.
    fn element(&mut self, at: &str, padded: bool) -> Result<Element<'a>, Fault> {
        let truncated = || fault(at, "file ends inside a data element");
        let tag = self
            .bytes
            .get(self.pos..self.pos + 8)
            .ok_or_else(truncated)?;
        let first = self.order.u32(&tag[..4]);
        if first >> 16 != 0 {
            // Small data element: type and size share the first word, data sits in the second.
            let len = (first >> 16) as usize;
            if len > 4 {
                return Err(fault(at, format!("small data element claims {len} bytes")));
            }
            let data = &tag[4..4 + len];
            self.pos += 8;
            return Ok(Element {
                kind: first & 0xffff,
                data,
            });
        }
        let len = self.order.u32(&tag[4..]) as usize;
        let start = self.pos + 8;
        let data = self.bytes.get(start..start + len).ok_or_else(truncated)?;
        self.pos = if padded {
            start + len.div_ceil(8) * 8
        } else {
            start + len
        };
        Ok(Element { kind: first, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    /// `market_small*.mat` hold `market_attribute` with a 1x1 `train` and `test` (see
    /// `tests/reference/make_mat_fixture.py`), plus `extra`: a 2x3 uint8 matrix and a 2x1 cell
    /// `{'ab'; [1.5 -2]}`.
    fn check_scipy_fixture(name: &str) {
        let mat = MatFile::open(&fixture(name)).unwrap();
        let root = mat.variable("market_attribute").unwrap();
        let train = root.field("train").unwrap();
        assert_eq!(
            train.field("age").unwrap(),
            &MatValue::Numeric {
                dims: vec![1, 3],
                data: vec![2.0, 3.0, 1.0]
            }
        );
        let index = train.field("image_index").unwrap();
        let MatValue::Cell { dims, items } = index else {
            panic!("image_index is {}", index.describe());
        };
        assert_eq!(dims, &[1, 3]);
        let ids: Vec<String> = items.iter().map(|i| i.as_text().unwrap()).collect();
        assert_eq!(ids, ["0007", "0002", "0010"]);
        assert_eq!(
            root.field("test").unwrap().field("age").unwrap().dims(),
            &[1, 2]
        );
        // Column-major: [[1, 2, 3], [4, 5, 6]] is stored 1 4 2 5 3 6.
        assert_eq!(
            mat.variable("extra").unwrap().field("u8").unwrap(),
            &MatValue::Numeric {
                dims: vec![2, 3],
                data: vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
            }
        );
        let MatValue::Cell { items, .. } = mat.variable("extra").unwrap().field("cell").unwrap()
        else {
            panic!("cell");
        };
        assert_eq!(items[0].as_text().as_deref(), Some("ab"));
        assert_eq!(
            items[1],
            MatValue::Numeric {
                dims: vec![1, 2],
                data: vec![1.5, -2.0]
            }
        );
    }

    #[test]
    fn reads_scipy_plain_file() {
        check_scipy_fixture("market_small.mat");
    }

    #[test]
    fn reads_scipy_compressed_file() {
        check_scipy_fixture("market_small_compressed.mat");
    }

    /// `matlab_style.mat` is written byte by byte the way MATLAB does (doubles stored as miUINT8,
    /// chars as miUINT16, compressed) and checked with scipy by the same script.
    #[test]
    fn reads_matlab_storage_types() {
        let mat = MatFile::open(&fixture("matlab_style.mat")).unwrap();
        let s = mat.variable("s").unwrap();
        assert_eq!(
            s.field("age").unwrap(),
            &MatValue::Numeric {
                dims: vec![1, 3],
                data: vec![1.0, 4.0, 2.0]
            }
        );
        assert_eq!(s.field("name").unwrap().as_text().as_deref(), Some("0042"));
        assert_eq!(s.field("missing"), None);
    }

    /// A little-endian data element, padded to 8 bytes.
    fn element(kind: u32, data: &[u8]) -> Vec<u8> {
        let mut e = [kind.to_le_bytes(), (data.len() as u32).to_le_bytes()].concat();
        e.extend_from_slice(data);
        e.resize(e.len().div_ceil(8) * 8, 0);
        e
    }

    /// A MAT file of the header and `variables`.
    fn file(variables: &[u8]) -> Vec<u8> {
        let mut bytes = vec![b' '; 124];
        bytes.extend_from_slice(&0x0100u16.to_le_bytes());
        bytes.extend_from_slice(b"IM");
        bytes.extend_from_slice(variables);
        bytes
    }

    /// The payload of a 1 x `n` cell array holding `items` (whole data elements).
    fn cell(n: u32, items: &[u8]) -> Vec<u8> {
        [
            element(MI_UINT32, &[MX_CELL as u8, 0, 0, 0, 0, 0, 0, 0]),
            element(MI_INT32, &[1u32.to_le_bytes(), n.to_le_bytes()].concat()),
            element(MI_INT8, b"c"),
            items.to_vec(),
        ]
        .concat()
    }

    fn parse_error(bytes: &[u8]) -> String {
        match MatFile::from_bytes(bytes, Path::new("hostile.mat")) {
            Ok(_) => panic!("a hostile file parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_zlib_bomb_stops_at_the_inflation_limit() {
        use std::io::Write;
        // 129 MiB of zeros compress to about 130 KB.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(MAX_BYTES >> 20) + 1 {
            z.write_all(&zeros).unwrap();
        }
        let compressed = z.finish().unwrap();
        let err = parse_error(&file(&element(MI_COMPRESSED, &compressed)));
        assert!(err.contains("inflate to more than 128 MiB"), "{err}");
        assert!(err.contains("hostile.mat: variable #1"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_before_the_stack_runs_out() {
        // 100,000 1x1 cells, each inside the last: without a limit the recursion overflows.
        let err = parse_error(&file(&nested_cells(100_000)));
        assert!(err.contains("nested deeper than 32"), "{err}");
        // Nesting within the limit parses.
        MatFile::from_bytes(&file(&nested_cells(MAX_DEPTH)), Path::new("deep.mat")).unwrap();
    }

    /// `depth` 1x1 cells, each holding the next, around an empty matrix.
    fn nested_cells(depth: usize) -> Vec<u8> {
        let innermost = element(MI_MATRIX, &[]);
        let header = cell(1, &[]);
        // Payload lengths from the inside out: each level adds its header and its tag.
        let mut len = innermost.len();
        let mut lengths = Vec::with_capacity(depth);
        for _ in 0..depth {
            len += header.len();
            lengths.push(len as u32);
            len += 8;
        }
        let mut bytes = Vec::with_capacity(len);
        for payload in lengths.iter().rev() {
            bytes.extend(MI_MATRIX.to_le_bytes());
            bytes.extend(payload.to_le_bytes());
            bytes.extend(&header);
        }
        bytes.extend(innermost);
        bytes
    }

    #[test]
    fn tiny_cells_cannot_take_unbounded_memory() {
        // Two million empty matrices cost 8 bytes of file each but a node of memory each: 16 MB
        // of file would take about 200 MB of values.
        let n = 2_000_000;
        let items = element(MI_MATRIX, &[]).repeat(n as usize);
        let err = parse_error(&file(&element(MI_MATRIX, &cell(n, &items))));
        assert!(err.contains("take more than 128 MiB"), "{err}");
        assert!(err.contains("c{"), "names the cell: {err}");
        // A hundred thousand parse.
        let items = element(MI_MATRIX, &[]).repeat(100_000);
        let mat = MatFile::from_bytes(
            &file(&element(MI_MATRIX, &cell(100_000, &items))),
            Path::new("cells.mat"),
        )
        .unwrap();
        assert_eq!(mat.variable("c").unwrap().dims(), &[1, 100_000]);
    }

    #[test]
    fn bad_files_are_errors_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.mat");
        std::fs::write(&path, b"not a mat file").unwrap();
        let err = MatFile::open(&path).unwrap_err();
        assert!(matches!(err, MatError::NotMat5 { .. }), "{err}");
        assert!(err.to_string().contains("bad.mat"), "{err}");

        // A valid file cut short inside the `market_attribute` variable.
        let bytes = std::fs::read(fixture("market_small.mat")).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
        let err = MatFile::open(&path).unwrap_err();
        assert!(matches!(err, MatError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("ends inside"), "{err}");

        // A struct array of two billion elements without fields: refused, not looped over.
        let payload = [
            element(MI_UINT32, &[MX_STRUCT as u8, 0, 0, 0, 0, 0, 0, 0]),
            element(
                MI_INT32,
                &[1i32.to_le_bytes(), 2_000_000_000i32.to_le_bytes()].concat(),
            ),
            element(MI_INT8, b"s"),
            element(MI_INT32, &8i32.to_le_bytes()),
            element(MI_INT8, b""),
        ]
        .concat();
        std::fs::write(&path, file(&element(MI_MATRIX, &payload))).unwrap();
        let err = MatFile::open(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("struct array of 2000000000 without fields"),
            "{err}"
        );

        let err = MatFile::open(&dir.path().join("absent.mat")).unwrap_err();
        assert!(matches!(err, MatError::Io { .. }), "{err}");
    }
}
