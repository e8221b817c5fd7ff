//! Calls recrl-lib from another crate: the typed configuration, the environment report and a
//! tensor on the device recrl-lib picks.
use recrl_lib::{config::Config, env, tch};

fn main() -> anyhow::Result<()> {
    let cfg = Config::load_default("ml-100k")?;
    let report = env::EnvReport::collect();
    let device = env::device()?;
    let x = tch::Tensor::arange(4, (tch::Kind::Float, device));
    let sum = x.sum(tch::Kind::Float).double_value(&[]);
    println!("recrl-lib {} on {:?}, libtorch {}", recrl_lib::VERSION, device, report.libtorch_version);
    println!("ml-100k: kl_beta {}, lora_rank {}, k_core {}", cfg.kl_beta, cfg.lora_rank, cfg.data.k_core);
    println!("sum(0..4) = {sum}");
    anyhow::ensure!(sum == 6.0, "libtorch computed {sum}, expected 6");
    Ok(())
}
