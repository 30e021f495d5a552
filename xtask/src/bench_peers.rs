//! `cargo xtask bench-peers`: our workloads beside PyTorch's, in one sitting.
//!
//! The machines this project runs on are shared and noisy, so the two sides
//! are measured alternately — ours, theirs, ours, … — for `--rounds` rounds,
//! and compared by the medians of the rounds. Ours is `cargo bench --bench
//! workloads` (criterion's median time per iteration, read from
//! `target/criterion/*/new/estimates.json`); theirs is
//! `../shared/bench/torch_peers.py` (its `RESULT {json}` lines). The machine's
//! sgemm ceiling is numpy's 1024³ sgemm on the same threads, measured in the
//! same sitting, and each rate is also given as a share of it (FLOPs per
//! element from `../shared/bench/flops.py`). Writes `docs/BENCHMARKS.md`.
//!
//! Each sitting is also kept in `docs/BENCHMARKS.json`, one report per
//! machine, instruction set and thread count: a new sitting replaces the
//! last one of its kind and the page shows the others below it, so the
//! figures from the project's other kinds of CPU stay beside today's.
//!
//! `--isa avx2` (or `portable`, `avx512`) caps both sides' vector
//! instructions, to measure what a CPU without AVX-512 would run on this
//! one: ours is built for `x86-64-v3` (or baseline `x86-64`) in its own
//! target directory and run with `FINETUNE_SIMD`; PyTorch gets
//! `ATEN_CPU_CAPABILITY`, `ONEDNN_MAX_CPU_ISA` and `MKL_ENABLE_INSTRUCTIONS`;
//! numpy's OpenBLAS `OPENBLAS_CORETYPE`. Without it OpenBLAS picks its own
//! kernels (an `OPENBLAS_CORETYPE` in the environment is removed for the
//! ceiling, which would otherwise measure whatever core it names).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::experiment::workspace_root;

const HELP: &str = "usage: cargo xtask bench-peers [--workloads W1,W2,W2b,W3,W4,W5,W7] [--rounds N] [--threads T] [--steps S] [--isa avx512|avx2|portable] [--python PY] [--json] [--render]\n\n\
Runs our workloads bench and ../shared/bench/torch_peers.py alternately, N rounds (default 3),\n\
on T threads (default 2), and writes docs/BENCHMARKS.md (and docs/BENCHMARKS.json, which keeps\n\
the last sitting of every machine, ISA and thread count). --isa caps both sides' vector\n\
instructions (default: all the CPU has). --render only rewrites docs/BENCHMARKS.md from the JSON. PY (default: FINETUNE_TORCH_PYTHON, else python3)\n\
must have torch and numpy.";

/// A workload: its id, our criterion benchmark (group/function), and the target ratio.
struct Workload {
    id: &'static str,
    ours: &'static str,
    target: f64,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        id: "W1",
        ours: "lenet/W1_all_trainable",
        target: 1.5,
    },
    Workload {
        id: "W2",
        ours: "lenet/W2_convs_frozen",
        target: 2.0,
    },
    Workload {
        id: "W2b",
        ours: "lenet/W2b_head_on_cached_features",
        target: 1.2,
    },
    Workload {
        id: "W3",
        ours: "recurrent/W3_char_lstm_train_tokens",
        target: 1.2,
    },
    Workload {
        id: "W4",
        ours: "recurrent/W4_gru_inference_sequences",
        target: 1.5,
    },
    Workload {
        id: "W5",
        ours: "recurrent/W5_textgenrnn_classifier_train_tokens",
        target: 1.2,
    },
    Workload {
        id: "W7",
        ours: "imagenet/W7_efficientnet_lite0_inference_images",
        target: 1.0,
    },
];

/// Ours only: a LoRA step on W1's network (adapters on every weight but the
/// head's), compared with our own W1 step.
const LORA_STEP: &str = "lenet/W1_lora_r8";
/// The same with adapters on conv2 and fc1 only (no input gradient below conv2).
const LORA_UPPER: &str = "lenet/W1_lora_r8_conv2_fc1";
/// Our f32 GEMM at 1024³ (its "elements" are FLOPs), set beside numpy's.
const OUR_SGEMM: &str = "gemm/sgemm_1024";

struct Options {
    workloads: Vec<&'static Workload>,
    rounds: usize,
    threads: usize,
    steps: usize,
    isa: Isa,
    python: String,
    json: bool,
    /// Only rewrite docs/BENCHMARKS.md from docs/BENCHMARKS.json.
    render: bool,
}

/// `--isa`: the vector instructions both sides may use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Isa {
    /// Whatever the CPU has (ours built for `native`).
    Native,
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    fn parse(name: &str) -> Result<Isa> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "native" => Isa::Native,
            "avx512" => Isa::Avx512,
            "avx2" => Isa::Avx2,
            "portable" => Isa::Portable,
            other => bail!("unknown --isa `{other}` (avx512, avx2, portable or native)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Native => "native",
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Our build's `-C target-cpu` (None: the workspace's own `native`) and
    /// `FINETUNE_SIMD`.
    fn ours(self) -> (Option<&'static str>, Option<&'static str>) {
        match self {
            Isa::Native => (None, None),
            Isa::Avx512 => (None, Some("avx512")),
            Isa::Avx2 => (Some("x86-64-v3"), Some("avx2")),
            Isa::Portable => (Some("x86-64"), Some("portable")),
        }
    }

    /// PyTorch's caps: ATen's kernels, oneDNN's and MKL's.
    fn torch_env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Isa::Native => vec![],
            Isa::Avx512 => vec![
                ("ATEN_CPU_CAPABILITY", "avx512"),
                ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE"),
                ("MKL_ENABLE_INSTRUCTIONS", "AVX512"),
            ],
            Isa::Avx2 => vec![
                ("ATEN_CPU_CAPABILITY", "avx2"),
                ("ONEDNN_MAX_CPU_ISA", "AVX2"),
                ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
            ],
            Isa::Portable => vec![
                ("ATEN_CPU_CAPABILITY", "default"),
                ("ONEDNN_MAX_CPU_ISA", "SSE41"),
                ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"),
            ],
        }
    }

    /// OpenBLAS's core for numpy's ceiling (None: its own choice).
    fn openblas_core(self) -> Option<&'static str> {
        match self {
            Isa::Native => None,
            Isa::Avx512 => Some("SkylakeX"),
            Isa::Avx2 => Some("Haswell"),
            Isa::Portable => Some("Prescott"),
        }
    }
}

fn parse(args: &[String]) -> Result<Option<Options>> {
    let mut o = Options {
        workloads: WORKLOADS.iter().collect(),
        rounds: 3,
        threads: 2,
        steps: 30,
        isa: Isa::Native,
        render: false,
        python: std::env::var("FINETUNE_TORCH_PYTHON").unwrap_or_else(|_| "python3".into()),
        json: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--workloads" => {
                let list = value()?;
                o.workloads = list
                    .split(',')
                    .map(|w| {
                        WORKLOADS
                            .iter()
                            .find(|k| k.id.eq_ignore_ascii_case(w.trim()))
                            .with_context(|| {
                                format!("unknown workload `{w}` (W1, W2, W2b, W3, W4, W5)")
                            })
                    })
                    .collect::<Result<_>>()?;
            }
            "--rounds" => o.rounds = value()?.parse().context("--rounds")?,
            "--threads" => o.threads = value()?.parse().context("--threads")?,
            "--steps" => o.steps = value()?.parse().context("--steps")?,
            "--isa" => o.isa = Isa::parse(&value()?)?,
            "--python" => o.python = value()?,
            "--json" => o.json = true,
            "--render" => o.render = true,
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(None);
            }
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    if o.rounds == 0 || o.threads == 0 || o.steps == 0 {
        bail!("--rounds, --threads and --steps must be positive");
    }
    Ok(Some(o))
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let Some(o) = parse(args)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let root = workspace_root();
    let history = root.join("docs/BENCHMARKS.json");
    // read before measuring: a history that cannot be read stops the run
    // now, not after minutes of measurement (nor is it silently replaced)
    let earlier = read_history(&history)?;
    if o.render {
        let sittings = earlier;
        let path = root.join("docs/BENCHMARKS.md");
        finetune_files::atomic_write_bytes(&path, page(&sittings).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {} from {}", path.display(), history.display());
        return Ok(ExitCode::SUCCESS);
    }
    let bench_dir = root.join("../shared/bench");
    let peers = bench_dir.join("torch_peers.py");
    if !peers.is_file() {
        bail!(
            "no {} (the PyTorch side of the comparison)",
            peers.display()
        );
    }
    let versions = match python_versions(&o.python) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "bench-peers needs PyTorch and numpy in `{}`: {e}\n\n\
                 Install them in a virtual environment outside the repository and point to it:\n\
                 \x20   python3 -m venv ~/torch-venv\n\
                 \x20   ~/torch-venv/bin/pip install torch numpy\n\
                 \x20   cargo xtask bench-peers --python ~/torch-venv/bin/python\n\
                 (or set FINETUNE_TORCH_PYTHON=~/torch-venv/bin/python)",
                o.python
            );
            return Ok(ExitCode::from(3));
        }
    };
    let flops = flops_per_item(&o.python, &bench_dir.join("flops.py")).unwrap_or_default();
    eprintln!("bench-peers: building the workloads bench");
    let status = cargo_bench(&root, &o)
        .args(["--no-run", "--quiet"])
        .status()?;
    if !status.success() {
        bail!("building the workloads bench failed");
    }
    let mut ours: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut theirs: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut ceilings = Vec::new();
    for round in 1..=o.rounds {
        eprintln!("bench-peers: round {round}/{} — ours", o.rounds);
        for (name, rate) in our_rates(&root, &o)? {
            ours.entry(name).or_default().push(rate);
        }
        eprintln!("bench-peers: round {round}/{} — PyTorch", o.rounds);
        for (id, rate) in torch_rates(&o, &peers)? {
            theirs.entry(id).or_default().push(rate);
        }
        ceilings.push(sgemm_ceiling(&o.python, o.threads, o.isa)?);
    }
    let ceiling = median(&ceilings);
    let mut rows = Vec::new();
    for w in &o.workloads {
        let (a, b) = (ours.get(w.ours), theirs.get(w.id));
        let (Some(a), Some(b)) = (a, b) else {
            eprintln!(
                "bench-peers: no result for {} (ours {:?}, PyTorch {:?})",
                w.id, a, b
            );
            continue;
        };
        let (mo, mt) = (median(a), median(b));
        let share = |rate: f64| {
            flops
                .get(w.id)
                .map(|mflop| rate * mflop * 1e6 / (ceiling * 1e9))
        };
        rows.push(json!({
            "workload": w.id, "ours": mo, "pytorch": mt, "ratio": mo / mt, "target": w.target,
            "met": mo / mt >= w.target,
            "ours_min": lowest(a), "ours_max": highest(a), "pytorch_min": lowest(b), "pytorch_max": highest(b),
            "ours_rounds": a, "pytorch_rounds": b,
            "ours_share_of_sgemm": share(mo), "pytorch_share_of_sgemm": share(mt),
        }));
    }
    let lora = match (ours.get(LORA_STEP), ours.get("lenet/W1_all_trainable")) {
        (Some(l), Some(full)) => {
            let upper = ours.get(LORA_UPPER).map(|u| median(u));
            json!({
                "lora_rate": median(l), "full_rate": median(full),
                "step_cost_ratio": median(full) / median(l),
                "upper_rate": upper,
                "upper_step_cost_ratio": upper.map(|u| median(full) / u),
            })
        }
        _ => Value::Null,
    };
    let command = format!("cargo xtask bench-peers {}", args.join(" "));
    let report = json!({
        "rows": rows,
        "lora_step": lora,
        "machine": machine(),
        "isa": o.isa.name(),
        "threads": o.threads,
        "rounds": o.rounds,
        "sgemm_1024_gflops": ceiling,
        "sgemm_rounds": ceilings,
        "ours_sgemm_1024_gflops": ours.get(OUR_SGEMM).map(|r| median(r) / 1e9),
        "ours_sgemm_rounds": ours.get(OUR_SGEMM).map(|r| r.iter().map(|x| x / 1e9).collect::<Vec<_>>()),
        "versions": versions,
        "date": crate::meta::today(),
        "command": command.trim_end(),
    });
    let sittings = with_earlier_sittings(earlier, &report);
    let path = root.join("docs/BENCHMARKS.md");
    let md = page(&sittings);
    for (file, bytes) in [
        (&history, serde_json::to_string_pretty(&sittings)? + "\n"),
        (&path, md.clone()),
    ] {
        finetune_files::atomic_write_bytes(file, bytes.as_bytes())
            .with_context(|| format!("writing {}", file.display()))?;
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{md}");
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// One criterion run of every selected workload (and the LoRA step): elements per second.
fn our_rates(root: &Path, o: &Options) -> Result<Vec<(&'static str, f64)>> {
    let mut names: Vec<&'static str> = o.workloads.iter().map(|w| w.ours).collect();
    if o.workloads.iter().any(|w| w.id == "W1") {
        names.push(LORA_STEP);
        names.push(LORA_UPPER);
    }
    names.push(OUR_SGEMM);
    let filter = names
        .iter()
        .map(|n| format!("^{n}$"))
        .collect::<Vec<_>>()
        .join("|");
    let status = cargo_bench(root, o)
        .args(["--quiet", "--"])
        .args(["--warm-up-time", "1", "--measurement-time", "4", "--noplot"])
        .arg(&filter)
        .env("RAYON_NUM_THREADS", o.threads.to_string())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("cargo bench --bench workloads failed");
    }
    let target = target_dir(root, o.isa);
    names
        .into_iter()
        .map(|name| {
            let dir = target.join("criterion").join(name).join("new");
            let est: Value = read_json(&dir.join("estimates.json"))?;
            let bench: Value = read_json(&dir.join("benchmark.json"))?;
            let ns = est["median"]["point_estimate"]
                .as_f64()
                .with_context(|| format!("no median in {}", dir.display()))?;
            let elements = bench["throughput"]["Elements"]
                .as_f64()
                .with_context(|| format!("no element throughput in {}", dir.display()))?;
            Ok((name, elements / (ns * 1e-9)))
        })
        .collect()
}

/// The target directory our bench builds into: the usual one, or one of its
/// own for a capped ISA (its flags differ, so it must not overwrite the
/// native build).
fn target_dir(root: &Path, isa: Isa) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    match isa.ours().0 {
        None => base,
        Some(_) => base.join(format!("isa-{}", isa.name())),
    }
}

/// `cargo bench --bench workloads`, built and run for `o.isa`.
fn cargo_bench(root: &Path, o: &Options) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["bench", "--bench", "workloads"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir(root, o.isa));
    let (cpu, simd) = o.isa.ours();
    if let Some(cpu) = cpu {
        // replaces the workspace's `-C target-cpu=native` (.cargo/config.toml)
        cmd.env("RUSTFLAGS", format!("-C target-cpu={cpu}"));
    }
    match simd {
        Some(cap) => cmd.env("FINETUNE_SIMD", cap),
        None => cmd.env_remove("FINETUNE_SIMD"),
    };
    cmd
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// One run of `torch_peers.py`: workload id → rate.
fn torch_rates(o: &Options, peers: &Path) -> Result<Vec<(&'static str, f64)>> {
    let out = Command::new(&o.python)
        .arg(peers)
        .arg(o.threads.to_string())
        .arg(o.steps.to_string())
        .args(o.workloads.iter().map(|w| w.id))
        .envs(o.isa.torch_env())
        .output()
        .with_context(|| format!("running {}", o.python))?;
    if !out.status.success() {
        bail!(
            "torch_peers.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rates = Vec::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("RESULT ")) {
        let v: Value = serde_json::from_str(line)?;
        let Some(w) = WORKLOADS
            .iter()
            .find(|w| v["workload"].as_str() == Some(w.id))
        else {
            continue;
        };
        if let Some(rate) = v["rate"].as_f64() {
            rates.push((w.id, rate));
        }
    }
    Ok(rates)
}

/// `torch` and `numpy` versions, or why they cannot be imported.
fn python_versions(python: &str) -> Result<Value> {
    let out = Command::new(python)
        .args([
            "-c",
            "import json, platform, torch, numpy; print(json.dumps({'python': platform.python_version(), 'torch': torch.__version__, 'numpy': numpy.__version__}))",
        ])
        .output()
        .with_context(|| format!("`{python}` does not run"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{}", err.lines().last().unwrap_or("import failed"));
    }
    let mut v: Value = serde_json::from_slice(&out.stdout)?;
    let rustc = Command::new("rustc").arg("-V").output().ok();
    v["rustc"] = json!(rustc.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()));
    Ok(v)
}

/// MFLOP per element of each workload, from `flops.py`'s lines
/// (`W1: 4.580 GFLOP per step, 64 items per step, 71.565 MFLOP per item`).
fn flops_per_item(python: &str, flops: &Path) -> Result<BTreeMap<String, f64>> {
    let out = Command::new(python).arg(flops).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let (id, rest) = l.split_once(':')?;
            let mflop = rest
                .split(',')
                .nth(2)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((id.trim().to_string(), mflop))
        })
        .collect())
}

/// numpy's 1024³ sgemm on `threads` threads, GFLOP/s (best of 10).
fn sgemm_ceiling(python: &str, threads: usize, isa: Isa) -> Result<f64> {
    let t = threads.to_string();
    let mut cmd = Command::new(python);
    match isa.openblas_core() {
        Some(core) => cmd.env("OPENBLAS_CORETYPE", core),
        None => cmd.env_remove("OPENBLAS_CORETYPE"),
    };
    let out = cmd
        .args([
            "-c",
            "import numpy as np, time\n\
             a = np.random.rand(1024, 1024).astype(np.float32); b = np.random.rand(1024, 1024).astype(np.float32)\n\
             a @ b\n\
             best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(10))\n\
             print(2 * 1024**3 / best / 1e9)",
        ])
        .env("OPENBLAS_NUM_THREADS", &t)
        .env("OMP_NUM_THREADS", &t)
        .env("MKL_NUM_THREADS", &t)
        .output()?;
    if !out.status.success() {
        bail!(
            "numpy sgemm failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// The sittings kept in `history` (a JSON array of reports, newest first);
/// none if there is no such file yet.
fn read_history(history: &Path) -> Result<Vec<Value>> {
    let text = match std::fs::read_to_string(history) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", history.display())),
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a list of sittings (move it aside to start a new history)",
            history.display()
        )
    })
}

/// `report` first, then those `earlier` sittings that ran on another
/// machine, ISA or thread count: one per kind, newest first.
fn with_earlier_sittings(earlier: Vec<Value>, report: &Value) -> Vec<Value> {
    let kind = |r: &Value| {
        (
            r["machine"].clone(),
            r["isa"].as_str().unwrap_or("native").to_string(),
            r["threads"].clone(),
        )
    };
    let mut sittings = vec![report.clone()];
    for r in earlier {
        if !sittings.iter().any(|s| kind(s) == kind(&r)) {
            sittings.push(r);
        }
    }
    sittings
}

/// The CPU model, family and model numbers, core count and vector
/// extensions, from /proc/cpuinfo.
fn machine() -> Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let family = match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("family {f} model {m}"),
        _ => String::new(),
    };
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let has = |f: &str| flags.contains(&f);
    let simd: Vec<&str> = [
        "avx2",
        "fma",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_bf16",
        "amx_tile",
    ]
    .into_iter()
    .filter(|f| has(f))
    .collect();
    json!({ "cpu": crate::meta::machine(), "family": family, "simd": simd.join(" ") })
}

/// What `--isa` meant for both sides, in words.
fn isa_text(isa: &str) -> String {
    match isa {
        "native" => {
            "all the CPU has (ours built for `native`; OpenBLAS's own choice of kernels)".into()
        }
        other => format!(
            "capped at {other} (`--isa {other}`: ours built for it and run with `FINETUNE_SIMD={other}`, PyTorch with ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA and MKL_ENABLE_INSTRUCTIONS, numpy with OPENBLAS_CORETYPE)"
        ),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn lowest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn highest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// `docs/BENCHMARKS.md`: the newest sitting, then the last one of every
/// other kind kept in the history.
fn page(sittings: &[Value]) -> String {
    let mut s = String::from(
        "# Benchmarks: finetune beside PyTorch\n\n<!-- generated by `cargo xtask bench-peers` (from docs/BENCHMARKS.json): do not edit by hand -->\n\n",
    );
    let Some((newest, earlier)) = sittings.split_first() else {
        return s;
    };
    s.push_str(&sitting(newest));
    if !earlier.is_empty() {
        s.push_str("\n## The last sitting on each other machine, ISA or thread count\n\nSpeed compares only within one sitting on one machine: these are not comparable with the table above, only with their own PyTorch column.\n");
    }
    for r in earlier {
        s.push_str(&format!(
            "\n### {} ({}), ISA {}, {} threads, {}\n\n",
            r["machine"]["cpu"].as_str().unwrap_or("?"),
            r["machine"]["family"].as_str().unwrap_or("?"),
            r["isa"].as_str().unwrap_or("native"),
            r["threads"],
            r["date"].as_str().unwrap_or("?"),
        ));
        s.push_str(&sitting(r));
    }
    s
}

/// One sitting's section: its command and machine, the table, the ceiling and LoRA.
fn sitting(r: &Value) -> String {
    let f0 = |v: &Value| v.as_f64().map_or("–".into(), |x| format!("{x:.0}"));
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("–".into(), |x| format!("{:.0}%", 100.0 * x))
    };
    let mut s = String::new();
    if let Some(note) = r["note"].as_str() {
        s.push_str(&format!("{note}\n\n"));
    }
    let family = r["machine"]["family"].as_str().unwrap_or("");
    s.push_str(&format!(
        "`{}` — {}{} ({}); vector instructions: {}; {} threads; {} rounds, ours and PyTorch alternately; {}. Versions: {}, PyTorch {}, numpy {}, Python {}.\n\n",
        r["command"].as_str().unwrap_or("?"),
        r["machine"]["cpu"].as_str().unwrap_or("?"),
        if family.is_empty() { String::new() } else { format!(", {family}") },
        r["machine"]["simd"].as_str().unwrap_or("?"),
        isa_text(r["isa"].as_str().unwrap_or("native")),
        r["threads"],
        r["rounds"],
        r["date"].as_str().unwrap_or("?"),
        r["versions"]["rustc"].as_str().unwrap_or("rustc ?"),
        r["versions"]["torch"].as_str().unwrap_or("?"),
        r["versions"]["numpy"].as_str().unwrap_or("?"),
        r["versions"]["python"].as_str().unwrap_or("?"),
    ));
    s.push_str(
        "Workloads as `../shared/bench/README.md` defines them (ours: `benches/workloads.rs`, criterion's median; PyTorch: `torch_peers.py`'s median step). Rates in elements per second (samples, tokens or sequences); each cell the median of the rounds (lowest–highest); share: the rate's FLOPs (`flops.py`) over numpy's 1024³ sgemm on the same threads, measured in the same sitting.\n\n\
         | workload | ours | PyTorch | ratio | target | ours, share of sgemm | PyTorch, share |\n|---|---|---|---|---|---|---|\n",
    );
    for row in r["rows"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} ({}–{}) | {} ({}–{}) | **{:.2}×** | ≥ {}× {} | {} | {} |\n",
            row["workload"].as_str().unwrap_or("?"),
            f0(&row["ours"]),
            f0(&row["ours_min"]),
            f0(&row["ours_max"]),
            f0(&row["pytorch"]),
            f0(&row["pytorch_min"]),
            f0(&row["pytorch_max"]),
            row["ratio"].as_f64().unwrap_or(f64::NAN),
            row["target"],
            if row["met"] == Value::Bool(true) {
                "met"
            } else {
                "**missed**"
            },
            pct(&row["ours_share_of_sgemm"]),
            pct(&row["pytorch_share_of_sgemm"]),
        ));
    }
    let gflops = |v: &Value| v.as_f64().map_or("?".into(), |x| format!("{x:.1}"));
    s.push_str(&format!(
        "\nsgemm 1024³ on the same threads: numpy {} GFLOP/s (its best of 10 calls, median of the rounds), ours {} (`gemm/sgemm_1024`, criterion's median, median of the rounds){}.\n",
        gflops(&r["sgemm_1024_gflops"]),
        gflops(&r["ours_sgemm_1024_gflops"]),
        match (
            r["ours_sgemm_1024_gflops"].as_f64(),
            r["sgemm_1024_gflops"].as_f64()
        ) {
            (Some(a), Some(b)) => format!(": **{:.2}×** numpy's", a / b),
            _ => String::new(),
        }
    ));
    if let Some(ratio) = r["lora_step"]["step_cost_ratio"].as_f64() {
        s.push_str(&format!(
            "\nLoRA: a training step of W1's network with LoRA r = 8 on both convolutions and the first Linear (base frozen, last Linear trained; `W1_lora_r8`) runs at {} samples/s against {} for the full step: it costs **{ratio:.2}×** a full fine-tuning step (target ≤ 0.8×).\n",
            f0(&r["lora_step"]["lora_rate"]),
            f0(&r["lora_step"]["full_rate"]),
        ));
        if let Some(upper) = r["lora_step"]["upper_step_cost_ratio"].as_f64() {
            s.push_str(&format!(
                "With adapters on the second convolution and the first Linear only (`W1_lora_r8_conv2_fc1`: nothing below conv2 trains, so its input gradient is never computed): {} samples/s, **{upper:.2}×** a full step. An adapter on the first convolution needs the gradient through conv2 to reach it, which a full step computes as well; what LoRA saves there is the weight gradients (conv2's comes from its rank-8 factors in Winograd's domain, conv1's ΔW is formed because its 9-wide kernel makes the factors dearer than the weight).\n",
                f0(&r["lora_step"]["upper_rate"]),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sitting(cpu: &str, isa: &str, threads: u64, w3: f64) -> Value {
        json!({
            "machine": {"cpu": cpu, "family": "family 1 model 2", "simd": "avx2 fma"},
            "isa": isa, "threads": threads, "date": "2026-12-04", "rounds": 1,
            "command": "cargo xtask bench-peers",
            "rows": [{"workload": "W3", "ours": w3, "pytorch": 100.0, "ratio": w3 / 100.0,
                      "target": 1.2, "met": w3 >= 120.0}],
        })
    }

    #[test]
    fn a_sitting_replaces_only_the_last_one_of_its_kind() {
        let earlier = vec![
            sitting("A", "native", 2, 110.0),
            sitting("A", "avx2", 2, 90.0),
            sitting("B", "native", 2, 130.0),
            sitting("A", "native", 1, 70.0),
        ];
        let all = with_earlier_sittings(earlier, &sitting("A", "native", 2, 125.0));
        let w3: Vec<f64> = all
            .iter()
            .map(|s| s["rows"][0]["ours"].as_f64().unwrap())
            .collect();
        assert_eq!(w3, [125.0, 90.0, 130.0, 70.0]);
        let md = page(&all);
        assert!(md.contains("| W3 | 125 "), "{md}");
        assert!(
            md.contains("### B (family 1 model 2), ISA native, 2 threads"),
            "{md}"
        );
        assert!(md.contains("ISA avx2"), "{md}");
        assert_eq!(md.matches("**missed**").count(), 2, "{md}");
    }

    #[test]
    fn an_unreadable_history_is_an_error_and_a_missing_one_is_empty() {
        let dir = std::env::temp_dir().join(format!("bench-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("BENCHMARKS.json");
        assert!(read_history(&path).unwrap().is_empty());
        std::fs::write(&path, "{ not a list").unwrap();
        let e = read_history(&path).unwrap_err();
        assert!(format!("{e:#}").contains("move it aside"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn isa_names_parse_and_unknown_ones_are_refused() {
        for isa in [Isa::Native, Isa::Avx512, Isa::Avx2, Isa::Portable] {
            assert_eq!(Isa::parse(isa.name()).unwrap(), isa);
        }
        assert!(Isa::parse("sse9").is_err());
        assert_eq!(Isa::Avx2.ours(), (Some("x86-64-v3"), Some("avx2")));
        assert_eq!(Isa::Native.openblas_core(), None);
    }
}
