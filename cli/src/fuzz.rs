//! Property-based fuzzing of the `.npy` and `.safetensors` readers: arbitrary bytes, and files
//! built to be almost valid (huge or overflowing shapes, wrong lengths and offsets, odd element
//! types, truncation, flipped bytes). Every input must be refused with an error or read into a
//! tensor consistent with its bytes; a panic or an abort (e.g. an allocation sized by a header)
//! fails the test. Valid files must read back exactly.
//!
//! `cargo test -p chandir-cli fuzz -- --nocapture` prints how many inputs ran; each property runs
//! `CHANDIR_FUZZ_CASES` inputs (default 2000, which keeps CI fast).

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::WriteNpyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::tensors::{Tensor, TensorFile};

fn cases() -> u32 {
    std::env::var("CHANDIR_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2000)
}

/// Runs `property` on `cases()` inputs from `strategy` and prints how many ran, and how many
/// of them were read as tensors (`property` returns whether it was).
fn fuzz<S: Strategy>(what: &str, strategy: S, property: impl Fn(S::Value) -> bool) {
    let (ran, read) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |value| {
            ran.fetch_add(1, Ordering::Relaxed);
            if property(value) {
                read.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{what}: {failure}"));
    eprintln!(
        "fuzz {what}: {} inputs, {} read as tensors",
        ran.load(Ordering::Relaxed),
        read.load(Ordering::Relaxed)
    );
}

/// Reads `bytes` as the command would, loads and analyses every tensor it lists, and checks
/// that what was read agrees with itself. Errors are fine; panics are not.
fn exercise(bytes: Vec<u8>, npy_name: bool) -> Option<Vec<Tensor>> {
    let file = TensorFile::from_bytes(bytes, "fuzz", npy_name).ok()?;
    let names: Vec<(String, Vec<usize>)> = file
        .headers()
        .iter()
        .map(|header| (header.name.clone(), header.shape.clone()))
        .collect();
    let mut loaded = Vec::new();
    for (name, shape) in names {
        let Ok(tensor) = file.load(&name) else {
            continue;
        };
        assert_eq!(tensor.shape(), shape.as_slice(), "{name}");
        let len = match &tensor {
            Tensor::F32(array) => array.len(),
            Tensor::F64(array) => array.len(),
        };
        assert_eq!(len, shape.iter().product::<usize>());
        if shape.len() >= 2 {
            let _ = crate::analyse(&name, &tensor, 4);
        }
        loaded.push(tensor);
    }
    Some(loaded)
}

/// Extents that make readers allocate too much or overflow: around 2^32, 2^40, 2^63, 2^64.
fn extent() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0u64..6).prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec![
            "65536", "4294967295", "4294967296", "68719476736", "1099511627776",
            "4611686018427387904", "9223372036854775807", "9223372036854775808",
            "18446744073709551615", "18446744073709551616", "340282366920938463463374607431768211456",
            "-1", "1.5", "True", "None", "'3'", "0x10",
        ])
        .prop_map(str::to_owned),
    ]
}

/// A shape's extents, or a malformed shape text.
fn shape() -> impl Strategy<Value = Result<Vec<String>, String>> {
    prop_oneof![
        8 => prop::collection::vec(extent(), 0..5).prop_map(Ok),
        1 => prop::sample::select(vec!["[2, 3]", "(", "()", "(1,,)", "(2, 3", "3", "{}"])
            .prop_map(|text| Err(text.to_owned())),
    ]
}

fn tuple(dims: &[String]) -> String {
    match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    }
}

/// The data bytes a header with these extents and element size describes, if that is small.
fn data_size(dims: &[String], element: usize) -> Option<usize> {
    dims.iter()
        .map(|d| d.parse::<usize>().ok())
        .try_fold(element, |total, d| total.checked_mul(d?))
        .filter(|&total| total <= 4096)
}

/// Bytes that are mostly valid floats, from a seed.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

fn descriptor() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["'<f4'", "'<f8'"]),
        1 => prop::sample::select(vec![
            "'>f4'", "'>f8'", "'=f4'", "'|f4'", "'<f2'", "'<i4'", "'|u1'", "'|b1'", "'<c16'",
            "'f4'", "'<f16'", "[('a', '<f4')]", "3", "''",
        ]),
    ]
    .prop_map(str::to_owned)
}

/// Damage done to an otherwise built file.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Flip(Vec<(usize, u8)>),
    Truncate(usize),
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        2 => prop::collection::vec((any::<usize>(), any::<u8>()), 1..6).prop_map(Damage::Flip),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Damage::Insert(at, bytes)),
    ]
}

fn apply(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::None => {}
        Damage::Flip(flips) => {
            for &(at, value) in flips {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = value;
                }
            }
        }
        Damage::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
        Damage::Insert(at, extra) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
    }
    bytes
}

/// An `.npy` file from its header fields and `data` bytes, with a correct or a random header
/// length field, in format version 1, 2 or 3.
fn npy_file(
    version: u8,
    descr: &str,
    fortran: &str,
    shape: &str,
    data: &[u8],
    length_override: Option<u32>,
) -> Vec<u8> {
    let mut header =
        format!("{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}");
    let length_bytes = if version == 1 { 2 } else { 4 };
    while (8 + length_bytes + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend_from_slice(&[version, 0]);
    let length = length_override.unwrap_or(header.len() as u32);
    if version == 1 {
        bytes.extend_from_slice(&(length as u16).to_le_bytes());
    } else {
        bytes.extend_from_slice(&length.to_le_bytes());
    }
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn almost_npy() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![1u8, 1, 1, 2, 3, 0, 4]),
        descriptor(),
        prop::sample::select(vec!["False", "True", "False", "True", "0", "None"]),
        shape(),
        // Most files carry exactly the data their header describes, so that reading goes deep.
        prop::option::weighted(0.2, prop::collection::vec(any::<u8>(), 0..200)),
        any::<u64>(),
        prop::option::weighted(0.05, any::<u32>()),
        damage(),
    )
        .prop_map(
            |(version, descr, fortran, shape, data, seed, length, damage)| {
                let element = match descr.as_str() {
                    "'<f8'" | "'>f8'" | "'<c16'" => 8,
                    "'|u1'" | "'|b1'" => 1,
                    "'<f2'" => 2,
                    _ => 4,
                };
                let (text, fitting) = match &shape {
                    Ok(dims) => (tuple(dims), data_size(dims, element)),
                    Err(text) => (text.clone(), None),
                };
                let data = match (data, fitting) {
                    (Some(random), _) => random,
                    (None, Some(size)) => filler(size, seed),
                    (None, None) => filler((seed % 64) as usize, seed),
                };
                apply(
                    npy_file(version, &descr, fortran, &text, &data, length),
                    &damage,
                )
            },
        )
}

/// One tensor of a `.safetensors` header: dtype, shape, and explicit offsets (`None`: the
/// consistent ones).
type TensorEntry = (String, Vec<String>, Option<(String, String)>);

/// A `.safetensors` file: an 8-byte header length, a JSON header of tensors with the given
/// dtypes, shapes and offsets (consistent or not), then `data`, or (if `data` is `None`) as many
/// bytes as the consistent offsets describe, when that is small.
fn safetensors_file(
    tensors: &[TensorEntry],
    data: Option<&[u8]>,
    length_override: Option<u64>,
    metadata: bool,
) -> Vec<u8> {
    let mut entries = Vec::new();
    if metadata {
        entries.push(r#""__metadata__":{"format":"pt"}"#.to_owned());
    }
    let mut offset = 0u128;
    for (index, (dtype, shape, offsets)) in tensors.iter().enumerate() {
        let (start, end) = match offsets {
            Some(explicit) => explicit.clone(),
            None => {
                // Consistent offsets where the shape is small enough to compute them.
                let size = match dtype.as_str() {
                    "F64" | "I64" => 8u128,
                    "F32" | "I32" => 4,
                    "F16" | "BF16" => 2,
                    _ => 1,
                };
                let count = shape
                    .iter()
                    .map(|d| d.parse::<u128>().unwrap_or(1))
                    .try_fold(size, |a, b| a.checked_mul(b))
                    .unwrap_or(u128::MAX);
                let start = offset;
                offset = offset.saturating_add(count);
                (start.to_string(), offset.to_string())
            }
        };
        entries.push(format!(
            r#""t{index}":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{start},{end}]}}"#,
            shape.join(",")
        ));
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut bytes = length_override
        .unwrap_or(header.len() as u64)
        .to_le_bytes()
        .to_vec();
    bytes.extend_from_slice(header.as_bytes());
    match data {
        Some(data) => bytes.extend_from_slice(data),
        None => bytes.extend(filler(offset.min(4096) as usize, offset as u64)),
    }
    bytes
}

fn almost_safetensors() -> impl Strategy<Value = Vec<u8>> {
    let dtype = prop_oneof![
        4 => prop::sample::select(vec!["F32", "F64", "F16", "BF16"]),
        1 => prop::sample::select(vec!["I32", "I64", "U8", "BOOL", "F8_E4M3", "F4", "XX"]),
    ]
    .prop_map(str::to_owned);
    let offsets = prop::option::weighted(0.1, (extent(), extent()).prop_map(|(a, b)| (a, b)));
    let tensor = (dtype, prop::collection::vec(extent(), 0..4), offsets);
    (
        prop::collection::vec(tensor, 1..4),
        prop::option::weighted(0.2, prop::collection::vec(any::<u8>(), 0..300)),
        prop::option::weighted(0.05, prop_oneof![any::<u64>(), 0u64..400]),
        any::<bool>(),
        damage(),
    )
        .prop_map(|(tensors, data, length, metadata, damage)| {
            apply(
                safetensors_file(&tensors, data.as_deref(), length, metadata),
                &damage,
            )
        })
}

#[test]
fn fuzz_arbitrary_bytes() {
    let bytes = (
        prop::collection::vec(any::<u8>(), 0..400),
        prop::sample::select(vec![
            &b""[..],
            b"\x93NUMPY",
            b"\x93NUMPY\x01\x00",
            b"\x93NUMPY\x02\x00",
        ]),
        any::<bool>(),
    );
    fuzz("arbitrary bytes", bytes, |(tail, head, npy_name)| {
        let mut input = head.to_vec();
        input.extend_from_slice(&tail);
        exercise(input, npy_name).is_some_and(|tensors| !tensors.is_empty())
    });
}

#[test]
fn fuzz_npy_reader() {
    fuzz("almost-valid .npy", almost_npy(), |bytes| {
        if let Some(tensors) = exercise(bytes.clone(), true) {
            // Whatever was read accounts for the file's data exactly.
            let [tensor] = tensors.as_slice() else {
                panic!("a .npy file holds one array")
            };
            let element = match tensor {
                Tensor::F32(_) => 4,
                Tensor::F64(_) => 8,
            };
            let values: usize = tensor.shape().iter().product();
            assert!(values * element <= bytes.len());
            true
        } else {
            false
        }
    });
}

#[test]
fn fuzz_safetensors_reader() {
    fuzz("almost-valid .safetensors", almost_safetensors(), |bytes| {
        exercise(bytes, false).is_some_and(|tensors| !tensors.is_empty())
    });
}

/// Valid files read back exactly: the readers are not passing the fuzzing by refusing everything.
#[test]
fn fuzz_valid_files_read_back_exactly() {
    let file = (
        prop::collection::vec(0usize..5, 0..4),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    );
    fuzz(
        "valid .npy and .safetensors",
        file,
        |(shape, double, transposed, seed)| {
            let mut state = seed;
            let values = ArrayD::from_shape_simple_fn(IxDyn(&shape), || {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            });
            let values = if transposed {
                values.reversed_axes()
            } else {
                values
            };

            let mut npy = Vec::new();
            if double {
                values.write_npy(&mut npy).unwrap();
            } else {
                values.mapv(|v| v as f32).write_npy(&mut npy).unwrap();
            }
            let tensors = exercise(npy, true).expect("a valid .npy file reads");
            match (&tensors[0], double) {
                (Tensor::F64(read), true) => assert_eq!(read, &values),
                (Tensor::F32(read), false) => assert_eq!(read, &values.mapv(|v| v as f32)),
                _ => panic!("wrong element type"),
            }

            let data: Vec<u8> = values
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect();
            let dims: Vec<String> = values.shape().iter().map(usize::to_string).collect();
            let st = safetensors_file(&[("F32".into(), dims, None)], Some(&data), None, true);
            let file =
                TensorFile::from_bytes(st, "fuzz", false).expect("a valid .safetensors file reads");
            match file.load("t0").expect("its tensor loads") {
                Tensor::F32(read) => {
                    let standard = values.as_standard_layout().mapv(|v| v as f32);
                    assert_eq!(read, standard);
                }
                Tensor::F64(_) => panic!("wrong element type"),
            }
            true
        },
    );
}
