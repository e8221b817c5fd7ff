//! `recrl env` (step 0): libtorch, CUDA, threads and assets on this machine
//! ([`env::EnvReport`]), and optionally matmul timings.

use anyhow::Result;
use recrl_lib::env;

/// Flags of `recrl env`.
#[derive(clap::Args)]
pub struct EnvArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also time f32 matmuls (256, 512, 1024) on the selected device.
    #[arg(long)]
    bench: bool,
}

pub fn run(a: &EnvArgs) -> Result<()> {
    let report = env::EnvReport::collect();
    let timings: Vec<env::MatmulTiming> = if a.bench {
        let device = env::device()?;
        [256, 512, 1024]
            .into_iter()
            .map(|n| env::matmul_timing(n, device, 5))
            .collect()
    } else {
        Vec::new()
    };
    if a.json {
        let v = serde_json::json!({ "env": report, "matmul": timings });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{report}");
        for t in &timings {
            println!(
                "matmul {0}x{0}    {1:.2} ms, {2:.1} GFLOP/s",
                t.n,
                t.seconds * 1e3,
                t.gflops
            );
        }
    }
    Ok(())
}
