//! Binaries that link libtorch need an rpath to it (and, with the CUDA wheels, an explicit link
//! of libtorch_cuda). Link flags do not propagate from a library, so recrl-lib hands the facts
//! to its direct dependents' build scripts as DEP_RECRL_LIBTORCH_LIB and DEP_RECRL_LINK_CUDA.
fn main() {
    if let Ok(lib) = std::env::var("DEP_RECRL_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if std::env::var("DEP_RECRL_LINK_CUDA").as_deref() == Ok("1") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
