//! Runs the built `chandir` binary on files written here, into a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chandir::analysis::impulse_response;
use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::{ArrayD, Axis, IxDyn};
use ndarray_npy::{read_npy, write_npy, ReadNpyError, ReadableElement, WritableElement};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tempfile::TempDir;

mod sample;
use sample::{pearson, Normal};

fn chandir(args: &[&str]) -> Output {
    chandir_in(Path::new("."), args)
}

/// Runs in `dir`, so that file arguments can be plain names.
fn chandir_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chandir"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The command failed cleanly: non-zero exit, exactly one line on stderr, no panic.
fn assert_one_line_error(output: &Output, expected_fragment: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "should fail; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_ne!(
        output.status.code(),
        Some(101),
        "exit code 101 is a panic: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr:?}"
    );
    assert!(stderr.starts_with("chandir: error: "), "{stderr}");
    assert!(
        stderr.contains(expected_fragment),
        "{stderr:?} lacks {expected_fragment:?}"
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Mean correlation of the non-constant slice pairs at distance `d` along `axis`, or `None`.
fn reference_mean(w: &ArrayD<f64>, axis: usize, d: usize) -> Option<f64> {
    let slices: Vec<Vec<f64>> = w
        .axis_iter(Axis(axis))
        .map(|s| s.iter().copied().collect())
        .collect();
    let varies = |s: &Vec<f64>| s.iter().any(|&v| v != s[0]);
    let values: Vec<f64> = (0..slices.len().saturating_sub(d))
        .filter(|&i| varies(&slices[i]) && varies(&slices[i + d]))
        .map(|i| pearson(&slices[i], &slices[i + d]))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn le_bytes_f32(w: &ArrayD<f64>) -> Vec<u8> {
    w.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect()
}

fn le_bytes_f64(w: &ArrayD<f64>) -> Vec<u8> {
    w.iter().flat_map(|&v| v.to_le_bytes()).collect()
}

fn write_safetensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                *name,
                TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The table row of `name`, split on whitespace.
fn table_row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}

/// Checks a printed mean against the reference, to the 3 decimals printed.
fn assert_cell(cell: &str, expected: Option<f64>, what: &str) {
    match expected {
        Some(value) => {
            let printed: f64 = cell
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {cell:?} is not a number"));
            assert!(
                (printed - value).abs() <= 5e-4 + 1e-9,
                "{what}: printed {printed}, expected {value}"
            );
        }
        None => assert_eq!(cell, "-", "{what}"),
    }
}

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    /// Float tensors of rank >= 3 in the file, in f64 exactly as stored (f32 values widened).
    layers: Vec<(&'static str, ArrayD<f64>)>,
}

/// A checkpoint-like file: two conv weights of known structure (one f32, one f64 with a constant
/// output channel), an f16 conv weight, a bias (rank 1) and an integer counter (rank 0).
fn checkpoint() -> Fixture {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut rng = Normal(11);

    // Every output channel an increasing linear function of one pattern: output correlation 1.
    let base = rng.tensor(&[6, 3, 3]);
    let conv1 = ArrayD::from_shape_fn(IxDyn(&[8, 6, 3, 3]), |ix| {
        let o = ix[0];
        (o + 1) as f64 * base[[ix[1], ix[2], ix[3]]] + o as f64
    })
    .mapv(|v| v as f32 as f64);

    // Independent noise with output channel 1 constant.
    let mut conv2 = rng.tensor(&[6, 5, 2, 2]);
    conv2.index_axis_mut(Axis(0), 1).fill(0.25);

    let conv3 = rng
        .tensor(&[4, 4, 3, 3])
        .mapv(|v| half::f16::from_f64(v).to_f64());
    let conv3_bytes: Vec<u8> = conv3
        .iter()
        .flat_map(|&v| half::f16::from_f64(v).to_le_bytes())
        .collect();

    write_safetensors(
        &path,
        &[
            (
                "conv1.weight",
                Dtype::F32,
                vec![8, 6, 3, 3],
                le_bytes_f32(&conv1),
            ),
            (
                "conv1.bias",
                Dtype::F32,
                vec![8],
                le_bytes_f32(&rng.tensor(&[8])),
            ),
            (
                "conv2.weight",
                Dtype::F64,
                vec![6, 5, 2, 2],
                le_bytes_f64(&conv2),
            ),
            ("conv3.weight", Dtype::F16, vec![4, 4, 3, 3], conv3_bytes),
            (
                "bn.num_batches_tracked",
                Dtype::I64,
                vec![],
                7_i64.to_le_bytes().to_vec(),
            ),
        ],
    );
    Fixture {
        _dir: dir,
        path,
        layers: vec![
            ("conv1.weight", conv1),
            ("conv2.weight", conv2),
            ("conv3.weight", conv3),
        ],
    }
}

#[test]
fn correlation_table_matches_a_reference_for_every_rank_3_tensor() {
    let fixture = checkpoint();
    let table = stdout_of(&chandir(&["correlation", path_str(&fixture.path)]));
    assert!(
        !table.contains("conv1.bias") && !table.contains("num_batches"),
        "{table}"
    );
    for (name, w) in &fixture.layers {
        let row = table_row(&table, name);
        assert_eq!(row.len(), 10, "{row:?}");
        let shape: Vec<String> = w.shape().iter().map(usize::to_string).collect();
        assert_eq!(row[1], shape.join("x"));
        for (column, d) in [(2, 1), (3, 2), (4, 4)] {
            assert_cell(
                row[column],
                reference_mean(w, 0, d),
                &format!("{name} out d={d}"),
            );
            assert_cell(
                row[column + 4],
                reference_mean(w, 1, d),
                &format!("{name} in d={d}"),
            );
        }
    }
    // conv1: exact linear functions of each other along the output channels.
    assert_eq!(&table_row(&table, "conv1.weight")[2..5], ["+1.000"; 3]);
    // conv2: channel 1 is constant; with 6 channels and d up to 5 it pairs with each other channel once.
    let conv2 = table_row(&table, "conv2.weight");
    assert_eq!((conv2[5], conv2[9]), ("5", "0"));
}

#[test]
fn named_tensors_are_the_only_ones_analysed_and_may_have_rank_2() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("linear.safetensors");
    let w = Normal(12).tensor(&[10, 7]);
    let conv = Normal(13).tensor(&[3, 3, 2, 2]);
    write_safetensors(
        &path,
        &[
            ("fc.weight", Dtype::F64, vec![10, 7], le_bytes_f64(&w)),
            (
                "conv.weight",
                Dtype::F64,
                vec![3, 3, 2, 2],
                le_bytes_f64(&conv),
            ),
        ],
    );
    let table = stdout_of(&chandir(&[
        "correlation",
        path_str(&path),
        "--tensor",
        "fc.weight",
        "--max-distance",
        "2",
    ]));
    assert!(!table.contains("conv.weight"));
    let row = table_row(&table, "fc.weight");
    assert_cell(row[2], reference_mean(&w, 0, 1), "fc out d=1");
    assert_cell(row[6], reference_mean(&w, 1, 1), "fc in d=1");
}

#[test]
fn plots_are_written_as_svg() {
    let fixture = checkpoint();
    let dir = TempDir::new().unwrap();
    let [plot, scatter, hist, kernel] =
        ["plot", "scatter", "hist", "kernel"].map(|n| dir.path().join(format!("{n}.svg")));
    stdout_of(&chandir(&[
        "correlation",
        path_str(&fixture.path),
        "--plot",
        path_str(&plot),
        "--scatter",
        path_str(&scatter),
        "--hist",
        path_str(&hist),
    ]));
    stdout_of(&chandir(&[
        "kernel",
        "--n",
        "32",
        "--plot",
        path_str(&kernel),
    ]));
    for (path, must_name) in [
        (&plot, "conv2.weight"),
        (&scatter, "conv3.weight"),
        (&hist, "input channels"),
        (&kernel, "H1 periodic"),
    ] {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{}",
            path.display()
        );
        assert!(
            svg.contains(must_name),
            "{} lacks {must_name}",
            path.display()
        );
    }
}

/// `chandir smooth` flags, the preconditioner they name and how the command says it in words.
fn smooth_cases() -> Vec<(&'static [&'static str], ChannelDirected, &'static str)> {
    let h1 = |lambda, boundary| Metric::SobolevH1 { lambda, boundary };
    vec![
        (
            &[],
            ChannelDirected::sobolev(1.0),
            "H1 (Neumann, λ = 1) along axis 0 (output)",
        ),
        (
            &["--metric", "h1", "--lambda", "1"],
            ChannelDirected::sobolev(1.0),
            "H1 (Neumann, λ = 1) along axis 0 (output)",
        ),
        (
            &[
                "--lambda",
                "0.5",
                "--boundary",
                "periodic",
                "--direction",
                "input",
            ],
            ChannelDirected::new(h1(0.5, Boundary::Periodic), Direction::Input),
            "H1 (periodic, λ = 0.5) along axis 1 (input)",
        ),
        (
            &[
                "--metric",
                "h1",
                "--lambda",
                "2",
                "--boundary",
                "dirichlet",
                "--direction",
                "3",
            ],
            ChannelDirected::new(h1(2.0, Boundary::Dirichlet), Direction::Axis(3)),
            "H1 (Dirichlet, λ = 2) along axis 3",
        ),
        (
            &[
                "--metric",
                "reweighted-h0",
                "--lambda",
                "3",
                "--direction",
                "flattened",
            ],
            ChannelDirected::new(Metric::ReweightedH0 { lambda: 3.0 }, Direction::Flattened),
            "re-weighted H0 (λ = 3) along the whole tensor as one fiber (flattened)",
        ),
        (
            &["--metric", "h0"],
            ChannelDirected::new(Metric::H0, Direction::Output),
            "H0 (identity) along axis 0 (output)",
        ),
        (
            &["--metric", "h0", "--direction", "2"],
            ChannelDirected::new(Metric::H0, Direction::Axis(2)),
            "H0 (identity) along axis 2",
        ),
    ]
}

#[test]
fn smooth_matches_the_library_and_keeps_the_dtype() {
    let dir = TempDir::new().unwrap();
    let w = Normal(14).tensor(&[9, 4, 3, 2]);
    for (index, (flags, preconditioner, _)) in smooth_cases().iter().enumerate() {
        let (input, output) = (
            dir.path().join(format!("in{index}.npy")),
            dir.path().join(format!("out{index}.npy")),
        );
        let mut args = vec!["smooth", path_str(&input), path_str(&output)];
        args.extend_from_slice(flags);

        smooths_as(
            &args,
            (&input, &output),
            &w.mapv(|v| v as f32),
            preconditioner,
        );
        // The f32 file must not read back as f64.
        assert!(matches!(
            read_npy::<_, ArrayD<f64>>(&output),
            Err(ReadNpyError::WrongDescriptor(_))
        ));
        smooths_as(&args, (&input, &output), &w, preconditioner);
    }
}

/// `chandir args` reads `w` from `input` and writes it to `output`, in its own dtype, smoothed by
/// `preconditioner`.
fn smooths_as<A>(
    args: &[&str],
    (input, output): (&Path, &Path),
    w: &ArrayD<A>,
    preconditioner: &ChannelDirected,
) where
    A: chandir::Element + WritableElement + ReadableElement + std::fmt::Debug,
{
    write_npy(input, w).unwrap();
    stdout_of(&chandir(args));
    let got: ArrayD<A> = read_npy(output).unwrap();
    let mut expected = w.clone();
    preconditioner.apply(&mut expected).unwrap();
    assert_eq!(got, expected, "{args:?}");
}

#[test]
fn kernel_prints_the_impulse_responses_of_every_metric() {
    let table = stdout_of(&chandir(&[
        "kernel",
        "--n",
        "12",
        "--lambda",
        "0.7",
        "--channel",
        "3",
    ]));
    let metrics = [
        Metric::H0,
        Metric::ReweightedH0 { lambda: 0.7 },
        Metric::SobolevH1 {
            lambda: 0.7,
            boundary: Boundary::Neumann,
        },
        Metric::SobolevH1 {
            lambda: 0.7,
            boundary: Boundary::Periodic,
        },
        Metric::SobolevH1 {
            lambda: 0.7,
            boundary: Boundary::Dirichlet,
        },
    ];
    let columns: Vec<_> = metrics
        .iter()
        .map(|&m| impulse_response(m, 12, 3).unwrap())
        .collect();
    for k in 0..12 {
        let row = table_row(&table, &k.to_string());
        assert_eq!(row.len(), 1 + metrics.len());
        for (cell, column) in row[1..].iter().zip(&columns) {
            // Plain decimals, 9 after the point.
            assert!(!cell.contains('e'), "{cell}");
            assert_eq!(cell.split('.').nth(1).map(str::len), Some(9), "{cell}");
            let printed: f64 = cell.parse().unwrap();
            assert!(
                (printed - column[k]).abs() <= 5e-10 + 1e-15,
                "k {k}: {printed} vs {}",
                column[k]
            );
        }
    }
    let sums = table_row(&table, "sum");
    for cell in &sums[1..5] {
        assert!(
            (cell.parse::<f64>().unwrap() - 1.0).abs() < 1e-6,
            "{sums:?}"
        );
    }
    assert!(sums[5].parse::<f64>().unwrap() < 1.0);
}

#[test]
fn bad_files_and_arguments_fail_with_one_line() {
    let dir = TempDir::new().unwrap();
    let file = |name: &str| dir.path().join(name);

    std::fs::write(
        file("garbage.safetensors"),
        b"this is not a tensor file at all, just some bytes",
    )
    .unwrap();
    std::fs::write(file("garbage.npy"), b"\x93NUMPY but then nonsense").unwrap();
    std::fs::write(file("empty.safetensors"), b"").unwrap();

    let w = Normal(15).tensor(&[4, 3, 2]);
    write_npy(file("whole.npy"), &w).unwrap();
    let bytes = std::fs::read(file("whole.npy")).unwrap();
    std::fs::write(file("truncated.npy"), &bytes[..bytes.len() - 12]).unwrap();
    let conv = le_bytes_f32(&w);
    write_safetensors(
        &file("whole.safetensors"),
        &[("conv.weight", Dtype::F32, vec![4, 3, 2], conv)],
    );
    let bytes = std::fs::read(file("whole.safetensors")).unwrap();
    std::fs::write(file("truncated.safetensors"), &bytes[..bytes.len() - 12]).unwrap();

    write_npy(file("vector.npy"), &ndarray::Array1::<f32>::zeros(5)).unwrap();
    write_npy(
        file("integers.npy"),
        &ndarray::Array3::<i32>::zeros((4, 3, 2)),
    )
    .unwrap();
    write_safetensors(
        &file("integers.safetensors"),
        &[
            ("conv.weight", Dtype::I32, vec![2, 2, 2], vec![0; 32]),
            ("fc.weight", Dtype::F32, vec![3], vec![0; 12]),
        ],
    );

    let cases: [(&[&str], &str); 14] = [
        (
            &["correlation", "garbage.safetensors"],
            "not a valid .safetensors",
        ),
        (&["correlation", "garbage.npy"], "not a readable .npy"),
        (
            &["correlation", "empty.safetensors"],
            "not a valid .safetensors",
        ),
        (&["correlation", "missing.npy"], "cannot read"),
        (&["correlation", "truncated.npy"], "not a readable .npy"),
        (&["correlation", "vector.npy"], "rank >= 2"),
        (
            &["correlation", "vector.npy", "--tensor", "vector"],
            "rank 1 is too low",
        ),
        (&["correlation", "integers.npy"], "unsupported element type"),
        (
            &["correlation", "integers.safetensors"],
            "unsupported element type I32",
        ),
        (
            &["correlation", "truncated.safetensors"],
            "not a valid .safetensors",
        ),
        (
            &["correlation", "integers.safetensors", "--tensor", "nope"],
            "no tensor named \"nope\"",
        ),
        (
            &["smooth", "truncated.npy", "out.npy"],
            "not a readable .npy",
        ),
        (
            &["smooth", "whole.npy", "out.npy", "--direction", "5"],
            "axis 5 is out of range",
        ),
        (&["kernel", "--n", "4", "--channel", "4"], "out of range"),
    ];
    for (args, fragment) in cases {
        assert_one_line_error(&chandir_in(dir.path(), args), fragment);
    }
    assert!(
        !file("out.npy").exists(),
        "a failed smooth must not write its output"
    );
}

#[test]
fn smooth_says_what_it_did_in_words() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("grad.npy");
    write_npy(&input, &Normal(16).tensor(&[9, 4, 3, 2]).mapv(|v| v as f32)).unwrap();
    for (flags, _, expected) in smooth_cases() {
        let mut args = vec!["smooth", "grad.npy", "out.npy"];
        args.extend_from_slice(flags);
        let report = stdout_of(&chandir_in(dir.path(), &args));
        assert_eq!(report.lines().count(), 1, "{report}");
        assert!(
            report.starts_with("wrote out.npy (float32, 9×4×3×2): "),
            "{report}"
        );
        assert!(
            report.trim_end().ends_with(expected),
            "{report:?} vs {expected:?}"
        );
        assert!(
            !report.contains("Some") && !report.contains('{'),
            "{report}"
        );
    }
}

/// A `.npy` file whose header declares `shape` of `descr` but holds only `data` bytes.
fn npy_declaring(descr: &str, shape: &str, data: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that magic (6) + version (2) + length (2) + header is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(vec![0u8; data]);
    bytes
}

#[test]
fn huge_declared_sizes_are_refused_before_allocating() {
    let dir = TempDir::new().unwrap();
    let cases = [
        ("f4_2_40.npy", npy_declaring("<f4", "(1099511627776,)", 64)),
        ("f8_2_36.npy", npy_declaring("<f8", "(68719476736,)", 64)),
        // The product overflows 64 bits.
        (
            "overflow.npy",
            npy_declaring("<f8", "(4294967296, 4294967296, 16)", 64),
        ),
        // A declared length that fits but is one value longer than the data.
        ("short.npy", npy_declaring("<f4", "(3, 5)", 56)),
        // Zero-sized but a huge axis: nothing to allocate, nothing to analyse.
        (
            "empty_wide.npy",
            npy_declaring("<f4", "(0, 1099511627776)", 0),
        ),
    ];
    for (name, bytes) in &cases {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    for (name, fragment) in [
        ("f4_2_40.npy", "declares shape [1099511627776] of 4-byte values (4398046511104 bytes), but the file holds 64 bytes of data"),
        ("f8_2_36.npy", "(549755813888 bytes), but the file holds 64 bytes"),
        ("overflow.npy", "more values than any array can hold"),
        ("short.npy", "(60 bytes), but the file holds 56 bytes"),
    ] {
        for command in [vec!["correlation", name], vec!["smooth", name, "out.npy"]] {
            let output = chandir_in(dir.path(), &command);
            assert_one_line_error(&output, fragment);
            assert_one_line_error(&output, &format!("{name} is not a readable .npy file: the header declares shape ["));
        }
    }
    assert_one_line_error(
        &chandir_in(
            dir.path(),
            &["correlation", "empty_wide.npy", "--tensor", "empty_wide"],
        ),
        "holds no values",
    );
    // A huge safetensors header is refused by the safetensors crate's own checks.
    let mut bytes = 16u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(
        br#"{"w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}"#,
    );
    std::fs::write(dir.path().join("huge.safetensors"), &bytes).unwrap();
    assert_one_line_error(
        &chandir_in(dir.path(), &["correlation", "huge.safetensors"]),
        "not a valid .safetensors",
    );
    assert!(!dir.path().join("out.npy").exists());
}

#[test]
fn a_huge_kernel_is_a_one_line_error() {
    for n in ["4294967295", "1048577"] {
        assert_one_line_error(
            &chandir(&["kernel", "--n", n]),
            &format!("--n {n} is too large: at most 1048576"),
        );
    }
    // Past u32: clap's own error, also on one line.
    assert_one_line_error(&chandir(&["kernel", "--n", "4294967296"]), "--n <N>");
    assert_one_line_error(
        &chandir(&["smooth", "a.npy", "b.npy", "--direction", "sideways"]),
        "expected output, input, flattened or an axis number",
    );
    assert_one_line_error(&chandir(&["kernel", "--bogus"]), "--bogus");
    // Help is still help.
    let help = chandir(&["kernel", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--lambda"));
}

#[test]
fn a_bad_plot_path_names_the_path_on_one_line() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("no/such/dir/kernel.svg");
    assert_one_line_error(
        &chandir(&["kernel", "--n", "8", "--plot", path_str(&missing)]),
        &format!("cannot write {}: ", missing.display()),
    );
}

/// The files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `chandir args` in `dir` under a file-size limit of `blocks` (`ulimit -f`), with SIGXFSZ
/// ignored so that the write fails with EFBIG instead of killing the process.
#[cfg(unix)]
fn chandir_with_file_limit(dir: &Path, blocks: u32, args: &[&str]) -> Output {
    let script = format!("trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" \"$@\"");
    Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_chandir"))
        .args(args)
        .output()
        .expect("sh runs")
}

/// A temporary directory holding `w` as the file `name`.
fn dir_with(name: &str, w: &ArrayD<f64>) -> TempDir {
    let dir = TempDir::new().unwrap();
    write_npy(dir.path().join(name), w).unwrap();
    dir
}

/// What `path` itself is (a link is not followed).
#[cfg(unix)]
fn file_type(path: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path).unwrap().file_type()
}

/// The permission bits of `path` (a link is followed).
#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `w` smoothed as `chandir smooth` does by default (H1, λ = 1, along the output channels).
fn smoothed(w: &ArrayD<f64>) -> ArrayD<f64> {
    let mut expected = w.clone();
    ChannelDirected::sobolev(1.0).apply(&mut expected).unwrap();
    expected
}

#[cfg(unix)]
#[test]
fn a_failed_write_leaves_the_target_and_the_input_as_they_were() {
    // 256 KiB of f64: far past a limit of 16 blocks (8 or 16 KiB, whatever the block size).
    let w = Normal(17).tensor(&[64, 16, 4, 8]);
    let dir = dir_with("in.npy", &w);
    let input = std::fs::read(dir.path().join("in.npy")).unwrap();
    let before = listing(dir.path());

    // A new output: not created.
    let output = chandir_with_file_limit(dir.path(), 16, &["smooth", "in.npy", "out.npy"]);
    assert_one_line_error(&output, "cannot write out.npy");
    assert_eq!(
        listing(dir.path()),
        before,
        "no output, no temporary file left"
    );

    // An existing output: untouched.
    std::fs::write(dir.path().join("old.npy"), b"the previous result").unwrap();
    let output = chandir_with_file_limit(dir.path(), 16, &["smooth", "in.npy", "old.npy"]);
    assert_one_line_error(&output, "cannot write old.npy");
    assert_eq!(
        std::fs::read(dir.path().join("old.npy")).unwrap(),
        b"the previous result"
    );

    // The input as its own output: it survives.
    let output = chandir_with_file_limit(dir.path(), 16, &["smooth", "in.npy", "in.npy"]);
    assert_one_line_error(&output, "cannot write in.npy");
    assert_eq!(std::fs::read(dir.path().join("in.npy")).unwrap(), input);
    assert_eq!(listing(dir.path()), {
        let mut names = before.clone();
        names.push("old.npy".into());
        names.sort();
        names
    });

    // The same limit raised: the write goes through, in place, and is the smoothed input.
    let output = chandir_with_file_limit(dir.path(), 4096, &["smooth", "in.npy", "in.npy"]);
    stdout_of(&output);
    let got: ArrayD<f64> = read_npy(dir.path().join("in.npy")).unwrap();
    assert_eq!(got, smoothed(&w));
}

#[cfg(unix)]
#[test]
fn outputs_get_the_usual_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir_with("in.npy", &Normal(18).tensor(&[4, 3]));
    std::fs::write(dir.path().join("plain"), b"").unwrap();
    let usual = mode(&dir.path().join("plain"));
    stdout_of(&chandir_in(dir.path(), &["smooth", "in.npy", "out.npy"]));
    stdout_of(&chandir_in(
        dir.path(),
        &["kernel", "--n", "4", "--plot", "k.svg"],
    ));
    for name in ["out.npy", "k.svg"] {
        assert_eq!(mode(&dir.path().join(name)), usual, "{name}");
    }
    // A replaced file keeps its own mode.
    std::fs::set_permissions(
        dir.path().join("out.npy"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    stdout_of(&chandir_in(dir.path(), &["smooth", "in.npy", "out.npy"]));
    assert_eq!(mode(&dir.path().join("out.npy")), 0o640);
    // A read-only target is not replaced.
    std::fs::set_permissions(
        dir.path().join("out.npy"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    let before = std::fs::read(dir.path().join("out.npy")).unwrap();
    write_npy(dir.path().join("in.npy"), &Normal(19).tensor(&[4, 3])).unwrap();
    assert_one_line_error(
        &chandir_in(dir.path(), &["smooth", "in.npy", "out.npy"]),
        "cannot write out.npy: the file is read-only",
    );
    assert_eq!(std::fs::read(dir.path().join("out.npy")).unwrap(), before);
}

// ---------------------------------------------------------------------------------------------
// What an output path is: a link, a FIFO, a device, a socket. The rules of `cp` and `sort -o`.

/// A directory with `in.npy` (`w`), `store/real.npy` holding "the previous result" and the
/// relative link `link.npy` to it; returns the directory and its `store`.
#[cfg(unix)]
fn linked_store(w: &ArrayD<f64>) -> (TempDir, PathBuf) {
    let dir = dir_with("in.npy", w);
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("real.npy"), b"the previous result").unwrap();
    std::os::unix::fs::symlink("store/real.npy", dir.path().join("link.npy")).unwrap();
    (dir, store)
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_has_its_target_replaced_and_stays_a_link() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let w = Normal(31).tensor(&[6, 3, 2]);
    // A relative link into another directory, and a chain of two links ending there.
    let (dir, store) = linked_store(&w);
    std::fs::set_permissions(store.join("real.npy"), PermissionsExt::from_mode(0o640)).unwrap();
    symlink("link.npy", dir.path().join("chain.npy")).unwrap();
    let (top, inside) = (listing(dir.path()), listing(&store));

    for name in ["link.npy", "chain.npy"] {
        std::fs::write(store.join("real.npy"), b"the previous result").unwrap();
        stdout_of(&chandir_in(dir.path(), &["smooth", "in.npy", name]));
        let got: ArrayD<f64> = read_npy(store.join("real.npy")).unwrap();
        assert_eq!(got, smoothed(&w), "{name}: the target holds the result");
        assert_eq!(
            mode(&store.join("real.npy")),
            0o640,
            "{name}: the target keeps its mode"
        );
        assert_eq!(
            listing(dir.path()),
            top,
            "{name}: no temporary file beside the link"
        );
        assert_eq!(listing(&store), inside, "{name}: none beside the target");
    }
    for (link, to) in [("link.npy", "store/real.npy"), ("chain.npy", "link.npy")] {
        assert!(
            file_type(&dir.path().join(link)).is_symlink(),
            "{link} is still a link"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join(link)).unwrap(),
            Path::new(to)
        );
    }

    // An absolute link, written by a plot: the same.
    symlink(store.join("k.svg"), dir.path().join("k.svg")).unwrap();
    std::fs::write(store.join("k.svg"), b"old").unwrap();
    stdout_of(&chandir_in(
        dir.path(),
        &["kernel", "--n", "4", "--plot", "k.svg"],
    ));
    assert!(std::fs::read_to_string(store.join("k.svg"))
        .unwrap()
        .starts_with("<svg"));
    assert!(file_type(&dir.path().join("k.svg")).is_symlink());

    // A dangling link creates the file it names, and stays a link.
    symlink("store/new.npy", dir.path().join("dangling.npy")).unwrap();
    stdout_of(&chandir_in(
        dir.path(),
        &["smooth", "in.npy", "dangling.npy"],
    ));
    let got: ArrayD<f64> = read_npy(store.join("new.npy")).unwrap();
    assert_eq!(got, smoothed(&w));
    assert!(file_type(&dir.path().join("dangling.npy")).is_symlink());
}

#[cfg(unix)]
#[test]
fn a_failed_write_through_a_link_leaves_the_target_and_no_temporary_file() {
    let (dir, store) = linked_store(&Normal(32).tensor(&[64, 16, 4, 8]));
    let (top, inside) = (listing(dir.path()), listing(&store));
    let output = chandir_with_file_limit(dir.path(), 16, &["smooth", "in.npy", "link.npy"]);
    assert_one_line_error(&output, "cannot write link.npy");
    assert_eq!(
        std::fs::read(store.join("real.npy")).unwrap(),
        b"the previous result"
    );
    assert_eq!((listing(dir.path()), listing(&store)), (top, inside));
}

#[cfg(unix)]
#[test]
fn the_input_survives_as_its_own_output_through_a_link() {
    use std::os::unix::fs::symlink;
    let w = Normal(33).tensor(&[5, 4, 3]);
    let dir = dir_with("x.npy", &w);
    symlink("x.npy", dir.path().join("alias.npy")).unwrap();
    let before = listing(dir.path());
    stdout_of(&chandir_in(dir.path(), &["smooth", "alias.npy", "x.npy"]));
    let once: ArrayD<f64> = read_npy(dir.path().join("x.npy")).unwrap();
    assert_eq!(once, smoothed(&w));
    stdout_of(&chandir_in(dir.path(), &["smooth", "x.npy", "alias.npy"]));
    let twice: ArrayD<f64> = read_npy(dir.path().join("x.npy")).unwrap();
    assert_eq!(twice, smoothed(&smoothed(&w)));
    assert!(file_type(&dir.path().join("alias.npy")).is_symlink());
    assert_eq!(listing(dir.path()), before);
}

/// Reads what `chandir args` (run in `dir`) writes into the FIFO `fifo`, and its output. Both
/// ends are opened before the command starts (a read-write end first, which Linux opens without
/// waiting, so that the read end does not wait either), and the read-write end is closed once the
/// command has exited: the reader then sees the end of the data whatever the command did, even if
/// it replaced the FIFO or never opened it, instead of waiting forever.
#[cfg(unix)]
fn read_through_fifo(dir: &Path, fifo: &Path, args: &[&str]) -> (Vec<u8>, Output) {
    use std::io::Read;
    let keeper = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
        .unwrap();
    let mut read_end = std::fs::File::open(fifo).unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        read_end.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let output = Command::new(env!("CARGO_BIN_EXE_chandir"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    drop(keeper);
    (reader.join().unwrap(), output)
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn a_fifo_is_written_into_and_stays_a_fifo() {
    use ndarray_npy::ReadNpyExt;
    use std::os::unix::fs::FileTypeExt;
    let w = Normal(34).tensor(&[8, 3, 3]);
    let dir = dir_with("in.npy", &w);
    let fifo = dir.path().join("pipe.npy");
    mkfifo(&fifo);
    std::os::unix::fs::symlink("pipe.npy", dir.path().join("to-pipe.npy")).unwrap();
    let before = listing(dir.path());
    for name in ["pipe.npy", "to-pipe.npy"] {
        let (bytes, output) = read_through_fifo(dir.path(), &fifo, &["smooth", "in.npy", name]);
        stdout_of(&output);
        let got = ArrayD::<f64>::read_npy(&bytes[..]).expect("an .npy came through the FIFO");
        assert_eq!(got, smoothed(&w), "{name}");
        assert!(file_type(&fifo).is_fifo(), "{name}");
        assert_eq!(listing(dir.path()), before, "{name}: no temporary file");
    }
    // A plot, too.
    let (bytes, output) = read_through_fifo(
        dir.path(),
        &fifo,
        &["kernel", "--n", "4", "--plot", "pipe.npy"],
    );
    stdout_of(&output);
    assert!(bytes.starts_with(b"<svg"));
    assert!(file_type(&fifo).is_fifo());
}

/// Whether this process may create device nodes (root with CAP_MKNOD): `mknod` in a temporary
/// directory, never a real device node's path.
#[cfg(unix)]
fn mknod(path: &Path, kind: &str, major: u32, minor: u32) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    root && Command::new("mknod")
        .arg(path)
        .args([kind, &major.to_string(), &minor.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(unix)]
#[test]
fn a_character_device_is_written_into_and_stays_a_device() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dir = dir_with("in.npy", &Normal(35).tensor(&[8, 3, 3]));
    // The null (1, 3) and full (1, 7) devices, as nodes of this temporary directory.
    let (null, full) = (dir.path().join("null"), dir.path().join("full"));
    if !(mknod(&null, "c", 1, 3) && mknod(&full, "c", 1, 7)) {
        eprintln!("skipped: creating device nodes needs root (the FIFO test covers the rest)");
        return;
    }
    let before = listing(dir.path());
    let is_device = |path: &Path, rdev: u64| {
        let meta = std::fs::symlink_metadata(path).unwrap();
        meta.file_type().is_char_device() && meta.rdev() == rdev
    };
    stdout_of(&chandir_in(dir.path(), &["smooth", "in.npy", "null"]));
    stdout_of(&chandir_in(
        dir.path(),
        &["kernel", "--n", "4", "--plot", "null"],
    ));
    assert!(is_device(&null, (1 << 8) | 3), "still the null device");
    // A device that fails the write: an error, and the node is left as it is.
    assert_one_line_error(
        &chandir_in(dir.path(), &["smooth", "in.npy", "full"]),
        "cannot write full: ",
    );
    assert!(is_device(&full, (1 << 8) | 7), "still the full device");
    assert_eq!(
        listing(dir.path()),
        before,
        "no temporary file, no new file"
    );
}

#[cfg(unix)]
#[test]
fn sockets_directories_and_block_devices_are_refused() {
    use std::os::unix::fs::FileTypeExt;
    let dir = dir_with("in.npy", &Normal(36).tensor(&[8, 3, 3]));
    let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
    std::fs::create_dir(dir.path().join("sub.npy")).unwrap();
    std::os::unix::fs::symlink("sock", dir.path().join("to-sock")).unwrap();
    let before = listing(dir.path());
    for (name, what) in [
        ("sock", "it is a socket"),
        ("to-sock", "it is a socket"),
        ("sub.npy", "it is a directory"),
    ] {
        assert_one_line_error(
            &chandir_in(dir.path(), &["smooth", "in.npy", name]),
            &format!("cannot write {name}: {what}"),
        );
    }
    assert!(file_type(&dir.path().join("sock")).is_socket());
    assert!(file_type(&dir.path().join("sub.npy")).is_dir());
    assert_eq!(listing(dir.path()), before);
    // A block device node of a number no driver has (240: local/experimental use).
    let block = dir.path().join("block");
    if mknod(&block, "b", 240, 0) {
        assert_one_line_error(
            &chandir_in(dir.path(), &["smooth", "in.npy", "block"]),
            "cannot write block: it is a block device",
        );
        assert!(file_type(&block).is_block_device());
    }
}
