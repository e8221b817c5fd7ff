//! Decoding kernels for a few rows (one per prompt), f32 on the CPU: `x · W`, rms_norm,
//! SwiGLU, RoPE, one-token attention and the KV-cache write.
//!
//! Decoding reads every weight once a token, so its speed is that of streaming `W` from
//! memory. libtorch's BLAS reached about 15 of the machine's 19–27 GB/s on the model's small
//! matrices at one row and took twice as long at eight. [`matmul`] streams `W` front to back:
//! each thread takes a contiguous band of `W`'s rows (or, for the wide output head, of its
//! columns), adds `x[m, k] · W[k, ·]` into an accumulator that stays in cache, and the bands'
//! partial sums are added at the end. Threads are libtorch's own OpenMP team
//! (`GOMP_parallel`), so no second pool competes for the cores. The other kernels replace
//! chains of small libtorch operations, which cost 10–15 µs each once the weight stream has
//! evicted their code and data from the caches. Each function returns `None` (or `false`)
//! where it does not apply (more rows, gradients, other kinds or devices, no AVX-512 or
//! libgomp for [`matmul`]), and the caller then uses libtorch.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

/// Most rows handled here (the rollout batch of docs/design.md §7 is 8).
pub const MAX_ROWS: usize = 8;
/// Accumulator values per panel (`rows × columns`, 256 KiB of f32): a panel's slice of `y`
/// stays in L2 while the weight rows stream past; wider panels keep the stream sequential.
const PANEL_VALUES: usize = 64 * 1024;
/// Weight rows read together (several sequential streams, fewer accumulator round trips).
const DEPTH: usize = 4;
/// Below this many columns per thread, threads split the rows of `W` instead of its columns.
const SPLIT_COLUMNS_FROM: usize = 4096;

/// `x [.., K] · w [K, N]` by this kernel, or `None` (the caller uses libtorch) when it does not
/// apply: not f32 on the CPU, gradients wanted, more than [`MAX_ROWS`] rows, `w`'s rows not
/// contiguous, or no SIMD/OpenMP support.
pub fn matmul(x: &Tensor, w: &Tensor) -> Option<Tensor> {
    let (k, n) = match w.size()[..] {
        [k, n] => (k as usize, n as usize),
        _ => return None,
    };
    let rows = x.numel() / k.max(1);
    let applies = x.device() == Device::Cpu
        && x.kind() == Kind::Float
        && w.kind() == Kind::Float
        && w.device() == Device::Cpu
        && !x.requires_grad()
        && !w.requires_grad()
        && x.size().last() == Some(&(k as i64))
        && (1..=MAX_ROWS).contains(&rows)
        && w.stride()[1] == 1
        && runtime().is_some();
    if !applies {
        return None;
    }
    let x = x.contiguous();
    let mut out_shape = x.size();
    *out_shape.last_mut()? = n as i64;
    let y = Tensor::zeros([rows as i64, n as i64], (Kind::Float, Device::Cpu));
    let job = Job {
        x: x.data_ptr() as *const f32,
        w: w.data_ptr() as *const f32,
        ld: w.stride()[0] as usize,
        y: y.data_ptr() as *mut f32,
        rows,
        k,
        n,
    };
    run(&job);
    Some(y.view(out_shape.as_slice()))
}

/// Whether `x` is a few contiguous f32 rows on the CPU that no gradient flows through: the
/// decoding case, where libtorch's per-operation cost (tens of µs once the weight stream has
/// evicted its code and data from the caches) outweighs the arithmetic.
fn few_plain_rows(x: &Tensor, width: i64) -> bool {
    x.device() == Device::Cpu
        && x.kind() == Kind::Float
        && !x.requires_grad()
        && x.is_contiguous()
        && x.size().last() == Some(&width)
        && (1..=MAX_ROWS).contains(&(x.numel() / width.max(1) as usize))
}

/// `x / rms(x) · w` over the last axis (as [`crate::explainer::model::rms_norm`]) for a few rows, or `None`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Option<Tensor> {
    let d = w.numel();
    if !few_plain_rows(x, d as i64) || w.kind() != Kind::Float || !w.is_contiguous() {
        return None;
    }
    let y = x.empty_like();
    // SAFETY: x and y are contiguous f32 CPU tensors of the same size, a multiple of d; w holds d.
    let (xs, ys, ws) = unsafe {
        (
            std::slice::from_raw_parts(x.data_ptr() as *const f32, x.numel()),
            std::slice::from_raw_parts_mut(y.data_ptr() as *mut f32, x.numel()),
            std::slice::from_raw_parts(w.data_ptr() as *const f32, d),
        )
    };
    for (xr, yr) in xs.chunks_exact(d).zip(ys.chunks_exact_mut(d)) {
        let mean_square = dot(xr, xr) / d as f32;
        let scale = 1.0 / (mean_square + eps as f32).sqrt();
        for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(ws) {
            *o = v * scale * g;
        }
    }
    Some(y)
}

/// SwiGLU `silu(gate) · up` of `gate | up` side by side (`[.., 2 f]` → `[.., f]`) for a few
/// rows, or `None`.
pub fn swiglu(gate_up: &Tensor) -> Option<Tensor> {
    let two_f = *gate_up.size().last()?;
    if !few_plain_rows(gate_up, two_f) || two_f % 2 != 0 {
        return None;
    }
    let f = (two_f / 2) as usize;
    let mut shape = gate_up.size();
    *shape.last_mut()? = f as i64;
    let y = Tensor::empty(shape.as_slice(), (Kind::Float, Device::Cpu));
    // SAFETY: gate_up is contiguous with rows × 2f values, y with rows × f.
    let (gu, ys) = unsafe {
        (
            std::slice::from_raw_parts(gate_up.data_ptr() as *const f32, gate_up.numel()),
            std::slice::from_raw_parts_mut(y.data_ptr() as *mut f32, y.numel()),
        )
    };
    for (row, out) in gu.chunks_exact(2 * f).zip(ys.chunks_exact_mut(f)) {
        let (gate, up) = row.split_at(f);
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *o = g / (1.0 + (-g).exp()) * u;
        }
    }
    Some(y)
}

/// Rotates, in place, the first `heads` heads of `qkv` (`[B, T, all heads × hd]`, heads side
/// by side) by RoPE in the `rotate_half` layout, with `cos`/`sin` `[B, 1, T, hd]`; `false` (and
/// nothing changed) unless these are a few plain rows.
pub fn rope_in_place(qkv: &Tensor, heads: usize, cos: &Tensor, sin: &Tensor) -> bool {
    let hd = *cos.size().last().unwrap_or(&0) as usize;
    let width = *qkv.size().last().unwrap_or(&0);
    let plain = |t: &Tensor| t.kind() == Kind::Float && t.is_contiguous() && !t.requires_grad();
    if hd == 0 || !few_plain_rows(qkv, width) || !plain(cos) || !plain(sin) {
        return false;
    }
    let rows = qkv.numel() / width as usize; // B·T, in the same order as cos/sin's B, T
    if cos.numel() != rows * hd || sin.numel() != rows * hd || heads * hd > width as usize {
        return false;
    }
    // SAFETY: shapes checked above; qkv is a fresh tensor that nothing else reads meanwhile.
    let (y, c, s) = unsafe {
        (
            std::slice::from_raw_parts_mut(qkv.data_ptr() as *mut f32, qkv.numel()),
            std::slice::from_raw_parts(cos.data_ptr() as *const f32, rows * hd),
            std::slice::from_raw_parts(sin.data_ptr() as *const f32, rows * hd),
        )
    };
    let half = hd / 2;
    for ((row, c), s) in y
        .chunks_exact_mut(width as usize)
        .zip(c.chunks_exact(hd))
        .zip(s.chunks_exact(hd))
    {
        for head in row[..heads * hd].chunks_exact_mut(hd) {
            for i in 0..half {
                let (a, b) = (head[i], head[i + half]);
                head[i] = a * c[i] - b * s[i];
                head[i + half] = b * c[i + half] + a * s[i + half];
            }
        }
    }
    true
}

/// Attention of one new token per row (decoding): queries are the first `nq` heads of `qkv`
/// (`[B, 1, heads × hd]`), keys and values `[B, nkv, S, hd]` (views of the cache), `allowed`
/// `[B, 1, 1, S]` bool. Returns `[B, 1, nq × hd]` (heads side by side), or `None` unless these
/// are a few plain rows. Query head `h` reads key/value head `h / (nq / nkv)` (grouped-query).
pub fn attend_one(
    qkv: &Tensor,
    (nq, nkv, hd): (usize, usize, usize),
    k: &Tensor,
    v: &Tensor,
    allowed: &Tensor,
) -> Option<Tensor> {
    let width = *qkv.size().last()?;
    let (b, s) = (k.size()[0] as usize, k.size()[2] as usize);
    let plain_kv = |t: &Tensor| {
        t.kind() == Kind::Float
            && !t.requires_grad()
            && t.size() == [b as i64, nkv as i64, s as i64, hd as i64]
            && t.stride()[3] == 1
    };
    if !few_plain_rows(qkv, width)
        || qkv.numel() != b * width as usize
        || !plain_kv(k)
        || !plain_kv(v)
        || k.stride() != v.stride()
        || allowed.kind() != Kind::Bool
        || allowed.numel() != b * s
        || !allowed.is_contiguous()
        || nq % nkv != 0
    {
        return None;
    }
    let y = Tensor::empty([b as i64, 1, (nq * hd) as i64], (Kind::Float, Device::Cpu));
    let st: Vec<usize> = k.stride().iter().map(|&x| x as usize).collect();
    let scale = 1.0 / (hd as f32).sqrt();
    let mut p = vec![0f32; s];
    // SAFETY: shapes and strides checked above; the buffers are only read, y only written.
    unsafe {
        let (q0, k0, v0) = (
            qkv.data_ptr() as *const f32,
            k.data_ptr() as *const f32,
            v.data_ptr() as *const f32,
        );
        let (m0, y0) = (allowed.data_ptr() as *const bool, y.data_ptr() as *mut f32);
        for bi in 0..b {
            for h in 0..nq {
                let q = std::slice::from_raw_parts(q0.add(bi * width as usize + h * hd), hd);
                let g = h / (nq / nkv);
                let base = bi * st[0] + g * st[1];
                let mut top = f32::NEG_INFINITY;
                for (j, pj) in p.iter_mut().enumerate() {
                    *pj = if *m0.add(bi * s + j) {
                        let kj = std::slice::from_raw_parts(k0.add(base + j * st[2]), hd);
                        dot(q, kj) * scale
                    } else {
                        f32::NEG_INFINITY
                    };
                    top = top.max(*pj);
                }
                let mut total = 0.0;
                for pj in p.iter_mut() {
                    *pj = (*pj - top).exp();
                    total += *pj;
                }
                let out = std::slice::from_raw_parts_mut(y0.add((bi * nq + h) * hd), hd);
                out.fill(0.0);
                for (j, &pj) in p.iter().enumerate() {
                    if pj > 0.0 {
                        let vj = std::slice::from_raw_parts(v0.add(base + j * st[2]), hd);
                        let wj = pj / total;
                        for (o, &x) in out.iter_mut().zip(vj) {
                            *o += wj * x;
                        }
                    }
                }
            }
        }
    }
    Some(y)
}

/// `Σ a·b` in 16 independent partial sums, so that it vectorises (a single running sum is
/// one long chain of dependent additions).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `dst.copy_(src)` for small f32 tensors of equal 4-D shape whose last axis is contiguous
/// (one decoding step's keys or values into the cache), without libtorch's dispatch; `false`
/// (nothing copied) otherwise.
pub fn copy_small(dst: &Tensor, src: &Tensor) -> bool {
    let plain = |t: &Tensor| {
        t.device() == Device::Cpu
            && t.kind() == Kind::Float
            && !t.requires_grad()
            && t.dim() == 4
            && t.stride()[3] == 1
    };
    let size = src.size();
    if !plain(dst) || !plain(src) || dst.size() != size || src.numel() > MAX_ROWS * 4096 {
        return false;
    }
    let (ds, ss) = (dst.stride(), src.stride());
    let len = size[3] as usize;
    // SAFETY: every offset below is inside its tensor (shapes and strides checked above).
    unsafe {
        let (d0, s0) = (dst.data_ptr() as *mut f32, src.data_ptr() as *const f32);
        for a in 0..size[0] {
            for b in 0..size[1] {
                for c in 0..size[2] {
                    let from = s0.offset((a * ss[0] + b * ss[1] + c * ss[2]) as isize);
                    let to = d0.offset((a * ds[0] + b * ds[1] + c * ds[2]) as isize);
                    std::ptr::copy_nonoverlapping(from, to, len);
                }
            }
        }
    }
    true
}

/// One product, shared read-only by the threads.
struct Job {
    x: *const f32,
    w: *const f32,
    ld: usize,
    y: *mut f32,
    rows: usize,
    k: usize,
    n: usize,
}

/// What the threads of one call share: the job and one partial-sum buffer per extra thread.
struct Team<'a> {
    job: &'a Job,
    partials: *mut f32,
    threads: usize,
    split_columns: bool,
}

type GompParallel = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
type OmpThreadNum = unsafe extern "C" fn() -> c_int;

/// The OpenMP entry points of the libgomp libtorch loaded, and the SIMD level, once.
struct Runtime {
    parallel: GompParallel,
    thread_num: OmpThreadNum,
}

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            {
                if !std::arch::is_x86_feature_detected!("avx512f") {
                    return None;
                }
                // SAFETY: dlopen with RTLD_NOLOAD only returns a library already loaded (by
                // libtorch); the symbols have the libgomp ABI's signatures.
                unsafe {
                    let lib =
                        libc::dlopen(c"libgomp.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
                    if lib.is_null() {
                        return None;
                    }
                    let parallel = libc::dlsym(lib, c"GOMP_parallel".as_ptr());
                    let thread_num = libc::dlsym(lib, c"omp_get_thread_num".as_ptr());
                    if parallel.is_null() || thread_num.is_null() {
                        return None;
                    }
                    Some(Runtime {
                        parallel: std::mem::transmute::<*mut c_void, GompParallel>(parallel),
                        thread_num: std::mem::transmute::<*mut c_void, OmpThreadNum>(thread_num),
                    })
                }
            }
            #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
            None
        })
        .as_ref()
}

/// Runs `job` on libtorch's thread count and adds up the partial sums.
fn run(job: &Job) {
    let rt = runtime().expect("checked by matmul");
    let threads = (tch::get_num_threads().max(1) as usize).min(job.k.max(1));
    let split_columns = job.n >= SPLIT_COLUMNS_FROM * threads;
    let mut partials = if split_columns {
        Vec::new()
    } else {
        vec![0f32; (threads - 1) * job.rows * job.n]
    };
    let team = Team {
        job,
        partials: partials.as_mut_ptr(),
        threads,
        split_columns,
    };
    if threads == 1 {
        band(&team, 0);
    } else {
        // SAFETY: `member` only reads `team` (alive until GOMP_parallel returns, which waits
        // for every thread) and writes disjoint parts of `y` and `partials`.
        unsafe {
            (rt.parallel)(
                member,
                &team as *const Team as *mut c_void,
                threads as c_uint,
                0,
            )
        };
    }
    if !split_columns {
        let size = job.rows * job.n;
        // SAFETY: `y` holds rows × n values, written by the threads that have now finished.
        let y = unsafe { std::slice::from_raw_parts_mut(job.y, size) };
        for part in partials.chunks_exact(size) {
            for (a, b) in y.iter_mut().zip(part) {
                *a += b;
            }
        }
    }
}

/// The body of every OpenMP thread.
extern "C" fn member(team: *mut c_void) {
    let rt = runtime().expect("checked by matmul");
    // SAFETY: `team` is the `Team` that `run` passed and keeps alive.
    let team = unsafe { &*(team as *const Team) };
    let t = unsafe { (rt.thread_num)() } as usize;
    if t < team.threads {
        band(team, t);
    }
}

/// Thread `t`'s share: a band of `W`'s columns (into `y`) or of its rows (into `y` for thread
/// 0, into its partial buffer otherwise).
fn band(team: &Team, t: usize) {
    let job = team.job;
    let share = |len: usize, align: usize| {
        let chunk = len.div_ceil(team.threads).div_ceil(align) * align;
        ((t * chunk).min(len), ((t + 1) * chunk).min(len))
    };
    let (k_range, n_range, y) = if team.split_columns {
        (0..job.k, share(job.n, 16), job.y)
    } else {
        let (k0, k1) = share(job.k, DEPTH);
        let y = match t {
            0 => job.y,
            // SAFETY: partials holds (threads − 1) buffers of rows × n values.
            _ => unsafe { team.partials.add((t - 1) * job.rows * job.n) },
        };
        (k0..k1, (0, job.n), y)
    };
    let (n0, n1) = n_range;
    if n0 >= n1 || k_range.is_empty() {
        return;
    }
    let slice = Slice {
        x: job.x,
        k: job.k,
        w: job.w,
        ld: job.ld,
        y,
        n: job.n,
    };
    // SAFETY: pointers and ranges come from `matmul`'s checked shapes.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        dispatch_avx512(&slice, job.rows, k_range, n0, n1)
    }
}

/// Where one thread reads and writes: `x [rows, k]`, `w` (row stride `ld`), `y [rows, n]`.
struct Slice {
    x: *const f32,
    k: usize,
    w: *const f32,
    ld: usize,
    y: *mut f32,
    n: usize,
}

/// AVX-512 entry: picks the kernel compiled for the row count. Rows read `DEPTH` weight rows
/// at a time up to 4 rows, 2 beyond (so that the broadcast `x` values fit in registers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dispatch_avx512(
    s: &Slice,
    rows: usize,
    ks: std::ops::Range<usize>,
    n0: usize,
    n1: usize,
) {
    match rows {
        1 => accumulate::<1, DEPTH>(s, ks, n0, n1),
        2 => accumulate::<2, DEPTH>(s, ks, n0, n1),
        3 => accumulate::<3, DEPTH>(s, ks, n0, n1),
        4 => accumulate::<4, DEPTH>(s, ks, n0, n1),
        5 => accumulate::<5, DEPTH>(s, ks, n0, n1),
        6 => accumulate::<6, DEPTH>(s, ks, n0, n1),
        7 => accumulate::<7, DEPTH>(s, ks, n0, n1),
        _ => accumulate::<8, DEPTH>(s, ks, n0, n1),
    }
}

/// `y[m, n0..n1] += Σ_{k ∈ ks} x[m, k] · w[k, n0..n1]` for `M` rows, panel by panel, `D`
/// weight rows at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn accumulate<const M: usize, const D: usize>(
    s: &Slice,
    ks: std::ops::Range<usize>,
    n0: usize,
    n1: usize,
) {
    let mut p0 = n0;
    while p0 < n1 {
        let p1 = (p0 + PANEL_VALUES / M).min(n1);
        let mut k = ks.start;
        while k + D <= ks.end {
            step::<M, D>(s, k, p0, p1);
            k += D;
        }
        while k < ks.end {
            step::<M, 1>(s, k, p0, p1);
            k += 1;
        }
        p0 = p1;
    }
}

/// Adds weight rows `k..k + D`, columns `p0..p1`, into `y`: 16 columns (one register) at a
/// time, the last `< 16` under a mask.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn step<const M: usize, const D: usize>(s: &Slice, k: usize, p0: usize, p1: usize) {
    use std::arch::x86_64::*;
    let xs: [[__m512; D]; M] =
        std::array::from_fn(|m| std::array::from_fn(|d| _mm512_set1_ps(*s.x.add(m * s.k + k + d))));
    let w_rows: [*const f32; D] = std::array::from_fn(|d| s.w.add((k + d) * s.ld));
    let mut c = p0;
    while c < p1 {
        let mask: __mmask16 = if c + 16 <= p1 {
            !0
        } else {
            (1u16 << (p1 - c)) - 1
        };
        let w: [__m512; D] = std::array::from_fn(|d| _mm512_maskz_loadu_ps(mask, w_rows[d].add(c)));
        for (m, xm) in xs.iter().enumerate() {
            let out = s.y.add(m * s.n + c);
            let mut acc = _mm512_maskz_loadu_ps(mask, out);
            for d in 0..D {
                acc = _mm512_fmadd_ps(xm[d], w[d], acc);
            }
            _mm512_mask_storeu_ps(out, mask, acc);
        }
        c += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel against libtorch's product in float64, at every row count, for shapes that
    /// take both thread splits, ragged depths and ragged column tails.
    #[test]
    fn equals_the_float64_product() {
        tch::manual_seed(3);
        for &(k, n) in &[(576, 960), (37, 8200), (1536, 576), (5, 23)] {
            let w = Tensor::randn([k, n], (Kind::Float, Device::Cpu));
            for rows in 1..=MAX_ROWS as i64 {
                let x = Tensor::randn([rows, k], (Kind::Float, Device::Cpu));
                let Some(got) = matmul(&x, &w) else {
                    eprintln!("kernel unavailable here; nothing to compare");
                    return;
                };
                let want = x.to_kind(Kind::Double).matmul(&w.to_kind(Kind::Double));
                let err = f64::try_from((got.to_kind(Kind::Double) - &want).abs().max()).unwrap();
                let scale = f64::try_from(want.abs().max()).unwrap();
                assert!(
                    err < 1e-5 * scale.max(1.0),
                    "k {k} n {n} rows {rows}: error {err}"
                );
            }
        }
    }

    /// Whether `a` and `b` agree within `atol` everywhere.
    fn close(a: &Tensor, b: &Tensor, atol: f64) -> bool {
        a.to_kind(Kind::Double)
            .allclose(&b.to_kind(Kind::Double), 0.0, atol, false)
    }

    /// rms_norm, SwiGLU, RoPE and one-token attention against libtorch's own operations.
    #[test]
    fn decoding_operations_equal_libtorch() {
        tch::manual_seed(4);
        let f = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([3, 1, 40], f);
        let w = Tensor::randn([40], f);
        let want = x.rms_norm([40i64].as_slice(), Some(&w), 1e-5);
        assert!(close(&rms_norm(&x, &w, 1e-5).unwrap(), &want, 1e-5));

        let gate_up = Tensor::randn([3, 1, 2 * 24], f);
        let want = gate_up.narrow(-1, 0, 24).silu() * gate_up.narrow(-1, 24, 24);
        assert!(close(&swiglu(&gate_up).unwrap(), &want, 1e-5));

        // 4 query heads over 2 KV heads of size 8, 2 rows, 5 keys (the 2nd row's first masked).
        let (nq, nkv, hd, s) = (4i64, 2i64, 8i64, 5i64);
        let qkv = Tensor::randn([2, 1, (nq + 2 * nkv) * hd], f);
        let angles = Tensor::randn([2, 1, 1, hd / 2], f);
        let angles = Tensor::cat(&[&angles, &angles], -1);
        let (cos, sin) = (angles.cos(), angles.sin());
        let heads = qkv.view([2, 1, nq + 2 * nkv, hd]).transpose(1, 2);
        let rotated =
            crate::explainer::model::apply_rope(&heads.narrow(1, 0, nq + nkv), &cos, &sin);
        let mine = qkv.copy();
        assert!(rope_in_place(&mine, (nq + nkv) as usize, &cos, &sin));
        let mine_heads = mine.view([2, 1, nq + 2 * nkv, hd]).transpose(1, 2);
        assert!(close(&mine_heads.narrow(1, 0, nq + nkv), &rotated, 1e-6));
        let values = |h: &Tensor| h.narrow(1, nq + nkv, nkv);
        assert!(
            values(&mine_heads).equal(&values(&heads)),
            "values are not rotated"
        );

        // A step's keys written into a cache buffer, as KvCache::append does.
        let buffer = Tensor::zeros([2, nkv, 9, hd], f);
        let keys = mine_heads.narrow(1, nq, nkv);
        assert!(copy_small(&buffer.narrow(2, 3, 1), &keys));
        assert!(buffer.narrow(2, 3, 1).equal(&keys));
        assert_eq!(
            f64::try_from(buffer.abs().sum(Kind::Double)).unwrap(),
            f64::try_from(keys.abs().sum(Kind::Double)).unwrap()
        );

        // Views of cache buffers with room beyond s, as KvCache hands them out.
        let k = Tensor::randn([2, nkv, 9, hd], f).narrow(2, 0, s);
        let v = Tensor::randn([2, nkv, 9, hd], f).narrow(2, 0, s);
        let allowed =
            Tensor::from_slice(&[true, true, true, true, true, false, true, true, true, true])
                .view([2, 1, 1, s]);
        let q = mine_heads.narrow(1, 0, nq);
        let want = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(&allowed),
            0.0,
            false,
            None,
            true,
        )
        .transpose(1, 2)
        .reshape([2, 1, nq * hd]);
        let got = attend_one(
            &mine,
            (nq as usize, nkv as usize, hd as usize),
            &k,
            &v,
            &allowed,
        )
        .unwrap();
        assert!(close(&got, &want, 1e-5));
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        let w = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
        let nine_rows = Tensor::randn([9, 8], (Kind::Float, Device::Cpu));
        assert!(matmul(&nine_rows, &w).is_none());
        let f64_rows = Tensor::randn([2, 8], (Kind::Double, Device::Cpu));
        assert!(matmul(&f64_rows, &w.to_kind(Kind::Double)).is_none());
        let grad = Tensor::randn([2, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        assert!(matmul(&grad, &w).is_none());
    }
}
