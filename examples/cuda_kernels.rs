//! `cargo run --release --features burn-cuda --example cuda_kernels -- DIR`: writes every device
//! kernel the crate launches, for `sm_80` and `sm_90`, as CUDA C++ (cubecl-cpp, for NVRTC) and as
//! PTX (cubecl-llvm, for ptxas) into `DIR`, with `DIR/manifest.tsv` naming each file, its threads
//! per block and the dynamic shared memory its launch asks for. No GPU or driver is needed;
//! `gpu/cuda_check.sh` then compiles them with NVIDIA's NVRTC and ptxas.

#[cfg(feature = "burn-cuda")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::fmt::Write as _;

    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: cuda_kernels DIR (the directory to write the kernels into)")?;
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let kernels = chandir::gpu::cuda_offline::all_kernels()?;
    let mut manifest = String::from("name\tarch\tthreads\tcuda\tcuda_shared\tptx\tptx_shared\n");
    for kernel in &kernels {
        let stem = format!("{}.sm_{}", kernel.name, kernel.arch);
        std::fs::write(dir.join(format!("{stem}.cu")), &kernel.cuda)?;
        std::fs::write(dir.join(format!("{stem}.ptx")), &kernel.ptx)?;
        writeln!(
            manifest,
            "{}\t{}\t{}\t{stem}.cu\t{}\t{stem}.ptx\t{}",
            kernel.name,
            kernel.arch,
            kernel.threads,
            kernel.cuda_shared_bytes,
            kernel.ptx_shared_bytes
        )?;
    }
    std::fs::write(dir.join("manifest.tsv"), manifest)?;
    println!(
        "{} kernel specializations written to {}",
        kernels.len(),
        dir.display()
    );
    Ok(())
}

#[cfg(not(feature = "burn-cuda"))]
fn main() {
    eprintln!("cuda_kernels needs the CUDA feature: cargo run --release --features burn-cuda --example cuda_kernels -- DIR");
    std::process::exit(2);
}
