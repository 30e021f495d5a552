//! Text generation with the real pretrained textgenrnn (embedded in `data/`):
//! greedy decoding, one character per full forward pass over the 40-step
//! context — what `finetune generate` runs. Throughput in characters/s;
//! `RAYON_NUM_THREADS=1 cargo bench --bench generation` for one core.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use finetune::data::CharVocab;
use finetune::data::embedded::{TEXTGENRNN_SAFETENSORS, TEXTGENRNN_VOCAB_JSON};
use finetune::pretrained::lm::{Sampling, generate};
use finetune::pretrained::{ImportOptions, Model, import_model_bytes, textgenrnn};

#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

fn textgenrnn_model() -> Model {
    let mut model = import_model_bytes(
        &textgenrnn(),
        TEXTGENRNN_SAFETENSORS,
        "textgenrnn",
        &ImportOptions::strict().keras(true),
    )
    .expect("the embedded textgenrnn imports")
    .model;
    let vocab = std::str::from_utf8(TEXTGENRNN_VOCAB_JSON).expect("UTF-8 JSON");
    model.metadata_mut().vocab =
        Some(CharVocab::from_textgenrnn_json(vocab, "vocab").expect("its vocabulary"));
    model
}

/// Characters per run: a prompt that never ends early in greedy decoding.
const CHARS: usize = 40;
const PROMPT: &str = "The quick brown fox jumps over the lazy d";

fn generation(c: &mut Criterion) {
    // the calling thread joins rayon's pool, as in `finetune`: a parallel
    // kernel called from it runs there instead of being handed to a pool
    // thread and waited for (two context switches per call)
    if std::env::var_os("FINETUNE_BENCH_COLD_POOL").is_none() {
        let _ = rayon::ThreadPoolBuilder::new()
            .use_current_thread()
            .build_global();
    }
    let mut model = textgenrnn_model();
    let out = generate(&mut model, PROMPT, Sampling::Greedy, CHARS, 0).expect("generates");
    assert_eq!(out.chars().count(), CHARS, "ended early: {out:?}");
    let mut group = c.benchmark_group("textgenrnn");
    group.throughput(Throughput::Elements(CHARS as u64));
    group.sample_size(10);
    group.bench_function("greedy_chars", |b| {
        b.iter(|| generate(&mut model, PROMPT, Sampling::Greedy, CHARS, 0).expect("generates"))
    });

    group.finish();
}

criterion_group!(benches, generation);
criterion_main!(benches);
