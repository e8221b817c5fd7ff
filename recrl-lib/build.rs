//! Makes binaries and tests find libtorch without environment variables, and links the CUDA
//! part of libtorch when the CUDA wheels are installed (TORCH_FLAVOR=cuda).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=TCH_LINK_CUDA");
    git_version();
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = Path::new(&lib);
    // Re-run when the CUDA wheels get (un)installed next to torch (site-packages' mtime changes).
    println!("cargo:rerun-if-changed={}", lib.join("../..").display());
    // Absolute rpath: `recrl`, `cargo test` and `cargo nextest` find libtorch on their own.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-env=RECRL_LIBTORCH_LIB={}", lib.display());
    println!(
        "cargo:rustc-env=RECRL_LIBTORCH_VERSION={}",
        torch_version(lib)
    );
    // rustc links with --as-needed, which drops libtorch.so -> libtorch_cuda.so, and CUDA never
    // registers. Link it when the nvidia wheels are present or TCH_LINK_CUDA=1.
    let link_cuda = match std::env::var("TCH_LINK_CUDA").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => lib.join("libtorch_cuda.so").exists() && cuda_wheels_present(lib),
    };
    if link_cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
    // Metadata for direct dependents' build scripts (DEP_RECRL_*).
    println!("cargo:libtorch_lib={}", lib.display());
    println!("cargo:link_cuda={}", u8::from(link_cuda));
}

/// `__version__` from the wheel's `torch/version.py`, or "unknown".
fn torch_version(lib: &Path) -> String {
    let text = std::fs::read_to_string(lib.join("../version.py")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// True when `site-packages/nvidia/*/lib/libcublas.so*` exists beside torch.
fn cuda_wheels_present(torch_lib: &Path) -> bool {
    let Ok(dirs) = std::fs::read_dir(torch_lib.join("../../nvidia")) else {
        return false;
    };
    dirs.flatten().any(|d| {
        std::fs::read_dir(d.path().join("lib"))
            .map(|fs| {
                fs.flatten()
                    .any(|f| f.file_name().to_string_lossy().starts_with("libcublas.so"))
            })
            .unwrap_or(false)
    })
}

/// The checkout's commit and whether tracked files differ from it, for `record::code`
/// (RECRL_GIT_COMMIT, RECRL_GIT_DIRTY: "unknown" without git or a repository). Re-run when
/// the package's files, HEAD or the index change.
fn git_version() {
    for p in [
        "src",
        "Cargo.toml",
        "build.rs",
        "../.git/HEAD",
        "../.git/index",
    ] {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| (!s.is_empty()).to_string());
    println!(
        "cargo:rustc-env=RECRL_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    println!(
        "cargo:rustc-env=RECRL_GIT_DIRTY={}",
        dirty.unwrap_or_else(|| "unknown".into())
    );
}
