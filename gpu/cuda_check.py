#!/usr/bin/env python3
"""Compiles every kernel that `examples/cuda_kernels.rs` wrote with NVIDIA's own tools, no GPU needed.

For each kernel specialization and architecture there are two sources: CUDA C++ (cubecl-cpp's
CUDA dialect), compiled to PTX by NVRTC as cubecl-cuda's runtime does, and PTX (cubecl-llvm's
NVPTX backend). Both PTX texts are assembled by ptxas with `-v`, which reports registers, spills
and static shared memory; the dynamic shared memory each launch asks for comes from the manifest.
Prints one row per kernel and compiler, the theoretical occupancy that follows, and ends with the
line `N passed, M failed`. A compile error, a spill of more than MINOR_SPILL bytes, or a kernel
that cannot be resident at all is a failure; a smaller spill (ptxas trading a few bytes of stack,
read back from L1, for a lower register count) is reported in the table and counted apart.
Exit status: 0 only if nothing failed.

usage: cuda_check.py KERNEL_DIR NVIDIA_TOOLS_DIR [--markdown FILE]
"""

import ctypes
import glob
import math
import os
import re
import subprocess
import sys

# Per streaming multiprocessor (CUDA C Programming Guide, "Compute capabilities" table).
LIMITS = {
    80: dict(registers=65536, threads=2048, blocks=32, shared=164 * 1024, block_shared=163 * 1024),
    90: dict(registers=65536, threads=2048, blocks=32, shared=228 * 1024, block_shared=227 * 1024),
}
MINOR_SPILL = 32  # bytes of spill stores and loads together
REGISTER_UNIT = 256  # registers are allocated per warp in units of 256
RESERVED_SHARED = 1024  # the driver reserves 1 KiB of shared memory per block


def occupancy(arch, threads, registers, shared):
    """Resident warps per SM over the maximum (64), from the three limits."""
    limit = LIMITS[arch]
    warps = math.ceil(threads / 32)
    per_warp = math.ceil(max(registers, 1) * 32 / REGISTER_UNIT) * REGISTER_UNIT
    by_registers = (limit["registers"] // per_warp) // warps
    by_threads = limit["threads"] // (warps * 32)
    by_shared = limit["shared"] // (shared + RESERVED_SHARED) if shared <= limit["block_shared"] else 0
    blocks = min(limit["blocks"], by_registers, by_threads, by_shared)
    return blocks, blocks * warps / (limit["threads"] // 32)


class Nvrtc:
    def __init__(self, tools):
        candidates = glob.glob(os.path.join(tools, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*"))
        candidates = [c for c in candidates if "builtins" not in c and ".alt." not in c]
        if not candidates:
            sys.exit(f"cuda_check: no libnvrtc.so under {tools}")
        self.lib = ctypes.CDLL(sorted(candidates)[0])
        self.include = os.path.join(tools, "nvidia", "cuda_runtime", "include")

    def ptx(self, source, arch):
        lib = self.lib
        program = ctypes.c_void_p()
        status = lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"kernel.cu", 0, None, None)
        if status != 0:
            return None, f"nvrtcCreateProgram: status {status}"
        target = f"--gpu-architecture=sm_{arch}a" if arch >= 90 else f"--gpu-architecture=sm_{arch}"
        options = [target.encode(), f"--include-path={self.include}".encode(), b"-lineinfo"]
        array = (ctypes.c_char_p * len(options))(*options)
        status = lib.nvrtcCompileProgram(program, len(options), array)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, log)
        if status != 0:
            lib.nvrtcDestroyProgram(ctypes.byref(program))
            return None, log.value.decode(errors="replace").strip()
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(program, ptx)
        lib.nvrtcDestroyProgram(ctypes.byref(program))
        return ptx.value.decode(), None


def assemble(ptxas, ptx_path):
    """ptxas -v on one PTX file: (registers, spill bytes, static shared bytes) or an error."""
    target = re.search(r"^\s*\.target\s+(sm_\w+)", open(ptx_path).read(), re.M)
    if not target:
        return None, "no .target in the PTX"
    result = subprocess.run(
        [ptxas, f"-arch={target.group(1)}", "-v", ptx_path, "-o", os.devnull],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None, (result.stderr or result.stdout).strip()
    info = result.stderr + result.stdout
    registers = [int(r) for r in re.findall(r"Used (\d+) registers", info)]
    spills = [int(a) + int(b) for a, b in re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)]
    shared = [int(s) for s in re.findall(r"(\d+) bytes smem", info)]
    if not registers:
        return None, f"no register count in ptxas output:\n{info}"
    return (max(registers), sum(spills), max(shared, default=0)), None


def summary(rows):
    """One row per kernel, storage/arithmetic pair, compiler and architecture, over its variants
    (in place or not, tile shapes): registers, spills and occupancy as ranges."""
    groups = {}
    for name, arch, compiler, threads, registers, spills, shared, occupancy, verdict in rows:
        parts = name.split(".")
        dtype = next((p for p in parts if p.startswith("f32") or p.startswith("f64")), "")
        family = parts[0] + (".periodic" if "periodic" in parts else "")
        g = groups.setdefault((family, dtype, compiler, arch), [])
        g.append((threads, registers, spills, shared, occupancy, verdict))
    out = [
        "| kernel | storage_arithmetic | compiler | sm | variants | threads | registers | spill B (max) | shared B | occupancy | failed |",
        "|---|---|---|---:|---:|---|---|---:|---|---|---:|",
    ]
    span = lambda values: f"{min(values)}" if min(values) == max(values) else f"{min(values)}–{max(values)}"
    for (family, dtype, compiler, arch), g in sorted(groups.items()):
        ok = [x for x in g if x[1] != "-"]
        failed = sum(1 for x in g if x[5] not in ("ok",) and not x[5].startswith("ok,"))
        if not ok:
            out.append(f"| {family} | {dtype} | {compiler} | {arch} | {len(g)} | – | – | – | – | – | {failed} |")
            continue
        occupancy = [int(x[4].split("%")[0]) for x in ok]
        out.append(
            f"| {family} | {dtype} | {compiler} | {arch} | {len(g)} | {span([x[0] for x in ok])} | "
            f"{span([x[1] for x in ok])} | {max(x[2] for x in ok)} | {span([x[3] for x in ok])} | "
            f"{span(occupancy)} % | {failed} |"
        )
    return out


def main():
    args = sys.argv[1:]
    markdown = None
    if "--markdown" in args:
        at = args.index("--markdown")
        markdown = args[at + 1]
        del args[at : at + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    kernel_dir, tools = args
    ptxas = os.path.join(tools, "nvidia", "cuda_nvcc", "bin", "ptxas")
    nvrtc = Nvrtc(tools)
    rows = []
    passed = failed = minor = 0
    with open(os.path.join(kernel_dir, "manifest.tsv")) as manifest:
        entries = [line.rstrip("\n").split("\t") for line in manifest if line.strip()]
    header, entries = entries[0], entries[1:]
    for entry in entries:
        e = dict(zip(header, entry))
        arch, threads = int(e["arch"]), int(e["threads"])
        for compiler, file_key, shared_key in (("nvrtc", "cuda", "cuda_shared"), ("llvm", "ptx", "ptx_shared")):
            path = os.path.join(kernel_dir, e[file_key])
            error = None
            if compiler == "nvrtc":
                ptx, error = nvrtc.ptx(open(path).read(), arch)
                if ptx is not None:
                    path = path[: -len(".cu")] + ".nvrtc.ptx"
                    with open(path, "w") as out:
                        out.write(ptx)
            if error is None:
                report, error = assemble(ptxas, path)
            if error is not None:
                failed += 1
                print(f"FAIL {e['name']} sm_{arch} {compiler}: {error}", file=sys.stderr)
                rows.append((e["name"], arch, compiler, threads, "-", "-", "-", "-", "compile error"))
                continue
            registers, spills, static_shared = report
            shared = static_shared + int(e[shared_key])
            blocks, share = occupancy(arch, threads, registers, shared)
            problems = []
            if spills > MINOR_SPILL:
                problems.append(f"{spills} B spilled")
            if blocks == 0:
                problems.append("cannot be resident")
            verdict = "; ".join(problems) or "ok"
            if spills and not problems:
                minor += 1
                verdict = f"ok, minor spill ({spills} B)"
            if problems:
                failed += 1
            else:
                passed += 1
            rows.append((e["name"], arch, compiler, threads, registers, spills, shared, f"{share:.0%} ({blocks} blocks)", verdict))
    columns = ("kernel", "sm", "compiler", "threads", "registers", "spill B", "shared B", "occupancy", "verdict")
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    table += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(table))
    if markdown:
        with open(markdown, "w") as out:
            out.write("\n".join(summary(rows)) + "\n")
    print(f"kernels with a minor spill (at most {MINOR_SPILL} B, passed): {minor}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
