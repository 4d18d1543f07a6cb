//! Reading weight tensors from `.npy` and `.safetensors` files, and writing `.npy`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ndarray::ArrayD;
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
        let is_npy =
            bytes.starts_with(NPY_MAGIC) || path.extension().is_some_and(|ext| ext == "npy");
        if is_npy {
            let name = path.file_stem().map_or_else(
                || "array".into(),
                |stem| stem.to_string_lossy().into_owned(),
            );
            let tensor = read_npy_bytes(&bytes)
                .with_context(|| format!("{} is not a readable .npy file", path.display()))?;
            let (shape, dtype) = match &tensor {
                Tensor::F32(array) => (array.shape().to_vec(), "F32"),
                Tensor::F64(array) => (array.shape().to_vec(), "F64"),
            };
            let header = TensorHeader {
                name,
                shape,
                dtype: dtype.into(),
            };
            return Ok(TensorFile::Npy { header, tensor });
        }
        let headers = safetensors_headers(&bytes).with_context(|| {
            format!(
                "{} is not a valid .safetensors or .npy file",
                path.display()
            )
        })?;
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

fn read_npy_bytes(bytes: &[u8]) -> Result<Tensor> {
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
    // Safetensors data is little-endian and need not be aligned: decode chunk by chunk.
    let tensor = match dtype {
        Dtype::F64 => Tensor::F64(ArrayD::from_shape_vec(
            shape,
            data.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )?),
        Dtype::F32 => Tensor::F32(ArrayD::from_shape_vec(
            shape,
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )?),
        Dtype::F16 => Tensor::F32(ArrayD::from_shape_vec(
            shape,
            data.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        )?),
        Dtype::BF16 => Tensor::F32(ArrayD::from_shape_vec(
            shape,
            data.chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        )?),
        other => bail!("unsupported element type {other:?} (F16, BF16, F32 or F64 needed)"),
    };
    Ok(tensor)
}

/// Writes `tensor` to `path` as `.npy`, in its own precision.
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let writer = std::io::BufWriter::new(file);
    match tensor {
        Tensor::F32(array) => array.write_npy(writer),
        Tensor::F64(array) => array.write_npy(writer),
    }
    .with_context(|| format!("cannot write {}", path.display()))
}
