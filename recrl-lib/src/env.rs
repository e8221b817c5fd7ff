//! Step 0: what this machine offers (libtorch, CUDA, threads, assets), and the device every
//! step computes on. The seed's `gpu_test.py` and `environment_check.sh` in one report.

use serde::Serialize;
use std::fmt;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// libtorch version this crate was built against (from the wheel's `version.py`).
pub const LIBTORCH_VERSION: &str = match option_env!("RECRL_LIBTORCH_VERSION") {
    Some(v) => v,
    None => "unknown",
};

/// Folder of the libtorch shared libraries this crate was built against.
pub const LIBTORCH_LIB: &str = match option_env!("RECRL_LIBTORCH_LIB") {
    Some(v) => v,
    None => "",
};

/// The device to compute on: `$RECRL_DEVICE` (`cpu`, `cuda`, `cuda:N`, `auto`) if set, else
/// the first CUDA GPU when one is usable, else the CPU. A malformed `$RECRL_DEVICE`, or a GPU
/// that this machine does not have, is an error that says what is available.
///
/// Loads libtorch's CUDA backend first when the binary was not linked against it (a crate
/// that depends on recrl-lib, or a notebook kernel), so CUDA is found wherever it exists.
pub fn device() -> anyhow::Result<Device> {
    load_cuda_backend();
    let spec = std::env::var("RECRL_DEVICE").ok();
    let spec = spec.as_deref().filter(|s| !s.trim().is_empty());
    usable(parse_device(spec).map_err(|e| e.context("$RECRL_DEVICE"))?)
}

/// The device `spec` names (`cpu`, `cuda` = `cuda:0`, `cuda:N`; `auto` or none: the first
/// CUDA GPU when one is usable, else the CPU). Anything else is an error.
pub fn parse_device(spec: Option<&str>) -> anyhow::Result<Device> {
    let bad = |s: &str| {
        anyhow::anyhow!("device {s:?} is not one of cpu, cuda, cuda:N (N = 0, 1, …), auto")
    };
    match spec.map(str::trim) {
        None | Some("auto") => Ok(Device::cuda_if_available()),
        Some("cpu") => Ok(Device::Cpu),
        Some("cuda") => Ok(Device::Cuda(0)),
        Some(s) => {
            let n = s.strip_prefix("cuda:").ok_or_else(|| bad(s))?;
            n.parse().map(Device::Cuda).map_err(|_| bad(s))
        }
    }
}

/// `device` if this machine has it (loading the CUDA backend first); a CUDA device it does not
/// have is an error naming the GPUs there are and the way to the CPU.
pub fn usable(device: Device) -> anyhow::Result<Device> {
    if let Device::Cuda(n) = device {
        load_cuda_backend();
        let count = tch::Cuda::device_count();
        anyhow::ensure!(
            (n as i64) < count,
            "CUDA device {n} was asked for, but {}; use --device cpu (or RECRL_DEVICE=cpu){}",
            match count {
                0 if !cuda_in_build() => "this libtorch has no CUDA (scripts/setup.sh installs the CPU wheel unless TORCH_FLAVOR=cuda)".to_string(),
                0 => "no CUDA GPU is visible".to_string(),
                c => format!("this machine has {c} (cuda:0 to cuda:{})", c - 1),
            },
            if count > 0 { ", or one of those" } else { "" }
        );
    }
    Ok(device)
}

/// Whether the libtorch this crate runs on ships its CUDA backend.
fn cuda_in_build() -> bool {
    std::path::Path::new(LIBTORCH_LIB)
        .join("libtorch_cuda.so")
        .is_file()
}

/// `dlopen`s `libtorch_cuda.so` once, with global symbols, so that its static initialisers
/// register the CUDA backend. Fails silently (CPU-only) when the CUDA libraries are absent.
pub fn load_cuda_backend() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let path = std::path::Path::new(LIBTORCH_LIB).join("libtorch_cuda.so");
        if !cuda_in_build() {
            return;
        }
        let Ok(cpath) = std::ffi::CString::new(path.to_string_lossy().as_bytes()) else {
            return;
        };
        // SAFETY: a valid NUL-terminated path; a null handle (missing CUDA libraries) is fine.
        unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    });
}

/// Seeds libtorch's generators (CPU and CUDA) for a reproducible run.
pub fn seed_everything(seed: u64) {
    tch::manual_seed(seed as i64);
    if tch::Cuda::is_available() {
        tch::Cuda::manual_seed_all(seed);
    }
}

/// What this machine offers, as shown by `recrl env` and `00_environment.ipynb`.
#[derive(Debug, Clone, Serialize)]
pub struct EnvReport {
    /// recrl-lib version.
    pub recrl_version: String,
    /// libtorch version (PyPI torch wheel).
    pub libtorch_version: String,
    /// libtorch library folder.
    pub libtorch_lib: String,
    /// The device steps will use.
    pub device: String,
    /// CUDA usable by libtorch.
    pub cuda_available: bool,
    /// Number of CUDA devices.
    pub cuda_devices: i64,
    /// cuDNN usable.
    pub cudnn_available: bool,
    /// cuDNN version when available.
    pub cudnn_version: Option<i64>,
    /// GPU names and memory from `nvidia-smi`, when it exists.
    pub gpus: Vec<String>,
    /// CPU cores available to this process.
    pub cpu_cores: usize,
    /// libtorch intra-op threads.
    pub torch_threads: i32,
    /// libtorch built with MKL.
    pub mkl: bool,
    /// libtorch built with OpenMP.
    pub openmp: bool,
}

impl EnvReport {
    /// Gathers the report (fast: no benchmark, no hashing).
    pub fn collect() -> Self {
        let device = device();
        let cuda = tch::Cuda::is_available();
        let cudnn = cuda && tch::Cuda::cudnn_is_available();
        EnvReport {
            recrl_version: crate::VERSION.to_string(),
            libtorch_version: LIBTORCH_VERSION.to_string(),
            libtorch_lib: LIBTORCH_LIB.to_string(),
            device: format!("{device:?}"),
            cuda_available: cuda,
            cuda_devices: if cuda { tch::Cuda::device_count() } else { 0 },
            cudnn_available: cudnn,
            cudnn_version: cudnn.then(tch::utils::version_cudnn),
            gpus: nvidia_smi_gpus(),
            cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            torch_threads: tch::get_num_threads(),
            mkl: tch::utils::has_mkl(),
            openmp: tch::utils::has_openmp(),
        }
    }

    /// (field, value) rows, for tables.
    pub fn rows(&self) -> Vec<(String, String)> {
        let gpus = if self.gpus.is_empty() {
            "none".to_string()
        } else {
            self.gpus.join("; ")
        };
        let cudnn = match self.cudnn_version {
            Some(v) => format!("yes ({v})"),
            None => "no".to_string(),
        };
        [
            ("recrl-lib", self.recrl_version.clone()),
            ("libtorch", self.libtorch_version.clone()),
            ("libtorch lib", self.libtorch_lib.clone()),
            ("device", self.device.clone()),
            (
                "CUDA",
                format!(
                    "{} ({} devices)",
                    yes_no(self.cuda_available),
                    self.cuda_devices
                ),
            ),
            ("cuDNN", cudnn),
            ("GPUs", gpus),
            ("CPU cores", self.cpu_cores.to_string()),
            ("torch threads", self.torch_threads.to_string()),
            (
                "MKL / OpenMP",
                format!("{} / {}", yes_no(self.mkl), yes_no(self.openmp)),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl fmt::Display for EnvReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in self.rows() {
            writeln!(f, "{k:<14} {v}")?;
        }
        Ok(())
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `name, memory` of each GPU from `nvidia-smi`; empty when the tool is missing.
fn nvidia_smi_gpus() -> Vec<String> {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// One matmul timing: `n×n` by `n×n` in f32.
#[derive(Debug, Clone, Serialize)]
pub struct MatmulTiming {
    /// Matrix side.
    pub n: i64,
    /// Best wall time of one product, seconds.
    pub seconds: f64,
    /// 2n³ / seconds, in GFLOP/s.
    pub gflops: f64,
}

/// Times an f32 `n×n` matmul on `device` (best of `reps` after one warm-up).
pub fn matmul_timing(n: i64, device: Device, reps: usize) -> MatmulTiming {
    let a = Tensor::randn([n, n], (Kind::Float, device));
    let b = Tensor::randn([n, n], (Kind::Float, device));
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let _ = a.matmul(&b);
    sync();
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let _ = a.matmul(&b);
        sync();
        best = best.min(t.elapsed().as_secs_f64());
    }
    MatmulTiming {
        n,
        seconds: best,
        gflops: 2.0 * (n as f64).powi(3) / best / 1e9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_matches_libtorch_and_build() {
        let r = EnvReport::collect();
        assert!(
            r.libtorch_version.starts_with("2.11.0"),
            "{}",
            r.libtorch_version
        );
        assert!(std::path::Path::new(&r.libtorch_lib)
            .join("libtorch_cpu.so")
            .is_file());
        assert_eq!(r.cuda_available, tch::Cuda::is_available());
        assert!(r.torch_threads >= 1 && r.cpu_cores >= 1);
        assert!(r.to_string().contains("libtorch"));
    }

    #[test]
    fn device_spec_parses() {
        let ok = |s| parse_device(s).unwrap();
        assert_eq!(ok(Some("cpu")), Device::Cpu);
        assert_eq!(ok(Some(" cuda ")), Device::Cuda(0));
        assert_eq!(ok(Some("cuda:3")), Device::Cuda(3));
        assert_eq!(ok(None), Device::cuda_if_available());
        assert_eq!(ok(Some("auto")), Device::cuda_if_available());
        for bad in ["bogus", "cuda:abc", "cuda:", "cuda:-1", "gpu", "CPU0", ""] {
            let err = parse_device(Some(bad)).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("cpu, cuda, cuda:N"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_gpu_this_machine_lacks_is_an_error_not_a_panic() {
        let count = tch::Cuda::device_count();
        assert_eq!(usable(Device::Cpu).unwrap(), Device::Cpu);
        let err = usable(Device::Cuda(count as usize))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("CUDA device {count}")) && err.contains("--device cpu"),
            "{err}"
        );
        if count > 0 {
            assert_eq!(usable(Device::Cuda(0)).unwrap(), Device::Cuda(0));
        }
    }

    #[test]
    fn matmul_timing_is_consistent() {
        let t = matmul_timing(64, Device::Cpu, 2);
        assert!(t.seconds > 0.0);
        let flops = 2.0 * 64f64.powi(3);
        assert!((t.gflops - flops / t.seconds / 1e9).abs() < 1e-9);
    }
}
