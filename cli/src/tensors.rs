//! Reading weight tensors from `.npy` and `.safetensors` files, and writing `.npy`.
//!
//! Nothing is allocated from a size a file declares before that size is checked against the
//! bytes the file really holds: a header cannot make the reader ask for more memory than the
//! file's own length.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ndarray::ArrayD;
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};
use safetensors::{Dtype, SafeTensors};

/// A floating-point tensor in the precision it was stored in (16-bit floats widened to `f32`).
pub enum Tensor {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

impl Tensor {
    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(array) => array.shape(),
            Tensor::F64(array) => array.shape(),
        }
    }
}

/// The name, shape and element type of one stored tensor, read from the file's header.
pub struct TensorHeader {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
}

/// An opened tensor file. `.npy` holds one array, named after the file stem.
pub enum TensorFile {
    Npy {
        header: TensorHeader,
        tensor: Tensor,
    },
    SafeTensors {
        bytes: Vec<u8>,
        headers: Vec<TensorHeader>,
    },
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

impl TensorFile {
    /// Reads and validates `path`: `.npy` if it starts with the NumPy magic string or has that
    /// extension, `.safetensors` otherwise.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let is_npy = path.extension().is_some_and(|ext| ext == "npy");
        let name = path.file_stem().map_or_else(
            || "array".into(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        Self::from_bytes(bytes, &name, is_npy).with_context(|| {
            if is_npy || bytes_are_npy(path) {
                format!("{} is not a readable .npy file", path.display())
            } else {
                format!(
                    "{} is not a valid .safetensors or .npy file",
                    path.display()
                )
            }
        })
    }

    /// Parses a file's contents: `.npy` if they start with the NumPy magic string or `npy_name`
    /// says so, `.safetensors` otherwise. A `.npy` array is named `name`.
    pub fn from_bytes(bytes: Vec<u8>, name: &str, npy_name: bool) -> Result<Self> {
        if npy_name || bytes.starts_with(NPY_MAGIC) {
            let tensor = read_npy_bytes(&bytes)?;
            let (shape, dtype) = match &tensor {
                Tensor::F32(array) => (array.shape().to_vec(), "float32"),
                Tensor::F64(array) => (array.shape().to_vec(), "float64"),
            };
            let header = TensorHeader {
                name: name.to_owned(),
                shape,
                dtype: dtype.into(),
            };
            return Ok(TensorFile::Npy { header, tensor });
        }
        let headers = safetensors_headers(&bytes)?;
        Ok(TensorFile::SafeTensors { bytes, headers })
    }

    /// Every tensor of the file, in storage order.
    pub fn headers(&self) -> Vec<&TensorHeader> {
        match self {
            TensorFile::Npy { header, .. } => vec![header],
            TensorFile::SafeTensors { headers, .. } => headers.iter().collect(),
        }
    }

    /// The tensor called `name`, converted to `f32`/`f64`; an error for a missing name or a
    /// non-float element type.
    pub fn load(&self, name: &str) -> Result<Tensor> {
        match self {
            TensorFile::Npy { header, tensor } if header.name == name => Ok(match tensor {
                Tensor::F32(array) => Tensor::F32(array.clone()),
                Tensor::F64(array) => Tensor::F64(array.clone()),
            }),
            TensorFile::Npy { header, .. } => bail!(
                "no tensor named {name:?} (this .npy file holds {:?})",
                header.name
            ),
            TensorFile::SafeTensors { bytes, headers } => {
                if !headers.iter().any(|header| header.name == name) {
                    let names: Vec<&str> =
                        headers.iter().map(|header| header.name.as_str()).collect();
                    bail!(
                        "no tensor named {name:?} (the file holds {})",
                        names.join(", ")
                    );
                }
                let file = SafeTensors::deserialize(bytes)?;
                let view = file.tensor(name)?;
                decode_safetensor(view.dtype(), view.shape(), view.data())
                    .with_context(|| format!("tensor {name:?}"))
            }
        }
    }
}

/// Whether the file at `path` starts with the NumPy magic string (for the error message only).
fn bytes_are_npy(path: &Path) -> bool {
    use std::io::Read;
    let mut start = [0u8; 6];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut start))
        .is_ok_and(|()| start == NPY_MAGIC)
}

/// The most values one array may hold: what ndarray can index (`isize::MAX` bytes).
const MAX_BYTES: usize = isize::MAX as usize;

/// The element size of a NumPy type descriptor we can read, e.g. `'<f4'` → 4.
fn float_size(descriptor: &impl std::fmt::Display) -> Option<usize> {
    match descriptor.to_string().as_str() {
        "'<f4'" | "'>f4'" | "'=f4'" | "'f4'" => Some(4),
        "'<f8'" | "'>f8'" | "'=f8'" | "'f8'" => Some(8),
        _ => None,
    }
}

/// Reads the `.npy` header, and checks that its shape and element type describe exactly the
/// bytes that follow, before anything of that size is allocated.
fn check_npy_header(bytes: &[u8]) -> Result<()> {
    // The header length field itself: 2 bytes after version 1.0, 4 after 2.0 and 3.0.
    let prefix = NPY_MAGIC.len() + 2;
    if bytes.len() < prefix + 2 {
        bail!("the file ends inside the .npy header");
    }
    let (length_bytes, header_len) = match bytes[NPY_MAGIC.len()] {
        1 => (
            2,
            u16::from_le_bytes([bytes[prefix], bytes[prefix + 1]]) as usize,
        ),
        2 | 3 if bytes.len() >= prefix + 4 => (
            4,
            u32::from_le_bytes(bytes[prefix..prefix + 4].try_into().expect("4 bytes")) as usize,
        ),
        2 | 3 => bail!("the file ends inside the .npy header"),
        major => bail!("unsupported .npy format version {major}"),
    };
    let data_start = prefix + length_bytes + header_len;
    if data_start > bytes.len() {
        bail!(
            "the .npy header declares {header_len} bytes of header, but the file has {} bytes",
            bytes.len()
        );
    }
    let mut reader = &bytes[..data_start];
    let header = Header::from_reader(&mut reader).map_err(|error| anyhow!(error))?;
    let size = float_size(&header.type_descriptor).ok_or_else(|| {
        anyhow!(
            "unsupported element type {} (float32 or float64 needed)",
            header.type_descriptor
        )
    })?;
    let data = bytes.len() - data_start;
    // ndarray's own limit: the non-zero extents' product must fit in isize bytes, even for
    // an empty array such as (0, 2**63).
    let nonzero = header
        .shape
        .iter()
        .filter(|&&extent| extent != 0)
        .try_fold(size, |total, &extent| total.checked_mul(extent))
        .filter(|&total| total <= MAX_BYTES);
    let declared = nonzero.map(|total| if header.shape.contains(&0) { 0 } else { total });
    match declared {
        Some(declared) if declared == data => Ok(()),
        Some(declared) => bail!(
            "the header declares shape {:?} of {size}-byte values ({declared} bytes), but the file holds {data} bytes of data",
            header.shape
        ),
        None => bail!(
            "the header declares shape {:?}, more values than any array can hold",
            header.shape
        ),
    }
}

fn read_npy_bytes(bytes: &[u8]) -> Result<Tensor> {
    check_npy_header(bytes)?;
    match ArrayD::<f32>::read_npy(bytes) {
        Ok(array) => return Ok(Tensor::F32(array)),
        Err(ReadNpyError::WrongDescriptor(_)) => {}
        Err(error) => return Err(error.into()),
    }
    match ArrayD::<f64>::read_npy(bytes) {
        Ok(array) => Ok(Tensor::F64(array)),
        Err(ReadNpyError::WrongDescriptor(descriptor)) => {
            bail!("unsupported element type {descriptor} (float32 or float64 needed)")
        }
        Err(error) => Err(error.into()),
    }
}

fn safetensors_headers(bytes: &[u8]) -> Result<Vec<TensorHeader>> {
    // deserialize checks the header against the buffer (offsets, lengths, truncation).
    let file = SafeTensors::deserialize(bytes)?;
    let (_, metadata) = SafeTensors::read_metadata(bytes)?;
    Ok(metadata
        .offset_keys()
        .into_iter()
        .filter_map(|name| {
            let view = file.tensor(&name).ok()?;
            Some(TensorHeader {
                shape: view.shape().to_vec(),
                dtype: format!("{:?}", view.dtype()),
                name,
            })
        })
        .collect())
}

fn decode_safetensor(dtype: Dtype, shape: &[usize], data: &[u8]) -> Result<Tensor> {
    let shape = shape.to_vec();
    let values = match dtype {
        Dtype::F64 => {
            return Ok(Tensor::F64(ArrayD::from_shape_vec(
                shape,
                little_endian(data, f64::from_le_bytes),
            )?))
        }
        Dtype::F32 => little_endian(data, f32::from_le_bytes),
        Dtype::F16 => little_endian(data, |b| half::f16::from_le_bytes(b).to_f32()),
        Dtype::BF16 => little_endian(data, |b| half::bf16::from_le_bytes(b).to_f32()),
        other => bail!("unsupported element type {other:?} (F16, BF16, F32 or F64 needed)"),
    };
    Ok(Tensor::F32(ArrayD::from_shape_vec(shape, values)?))
}

/// Decodes `data` as consecutive `N`-byte values. Safetensors data is little-endian and need not
/// be aligned: decoded chunk by chunk.
fn little_endian<T, const N: usize>(data: &[u8], decode: impl Fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|chunk| decode(chunk.try_into().expect("chunks_exact yields N bytes")))
        .collect()
}

/// Writes `tensor` to `path` as `.npy`, in its own precision, atomically: a failed write (a full
/// disk, a file-size limit) leaves `path` as it was, so the input survives `smooth x.npy x.npy`.
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<()> {
    crate::figure::write_atomically(path, |out| {
        match tensor {
            Tensor::F32(array) => array.write_npy(out),
            Tensor::F64(array) => array.write_npy(out),
        }
        .map_err(Into::into)
    })
    .map_err(|error| anyhow!(error))
}
