//! The command-line grammar (clap derive). Every command's `--help` ends
//! with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Transfer learning you can read: pretrain, freeze, fine-tune and measure.
#[derive(Parser, Debug)]
#[command(name = "finetune", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// No progress bars or per-epoch lines (results and errors are still printed).
    #[arg(long, global = true)]
    pub quiet: bool,

    /// The most parameters and buffers (elements) a model may have; every spec and
    /// checkpoint is checked against it before anything is built (default 2^30, 4 GiB of f32).
    #[arg(long, global = true, value_name = "N", default_value_t = finetune_pretrained::spec::DEFAULT_MAX_PARAMS)]
    pub max_params: u64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
// parsed once per process: the size of the largest variant costs nothing
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Pretrain on digits 0-4, fine-tune to 5-9 beside training from scratch; then the real MNIST CNN to Fashion-MNIST.
    #[command(
        after_help = "Example:\n  finetune demo            # embedded data, about a minute\n  finetune demo --quick    # a few seconds\n  finetune demo --data-dir ../shared/data   # the full data sets"
    )]
    Demo(DemoArgs),
    /// Train a model (a spec or a built-in) on a data set and save a checkpoint.
    #[command(
        after_help = "Example:\n  finetune pretrain --model lenet --data mnist --classes 0-4 --epochs 2 --out runs/lenet-0-4.ckpt"
    )]
    Pretrain(PretrainArgs),
    /// Fine-tune a saved model on a new task: new head, frozen layers, monitored training.
    #[command(
        after_help = "Example:\n  finetune finetune --from runs/lenet-0-4.ckpt --data mnist --classes 5-9 --per-class 50 \\\n      --freeze '0.*' '2.*' --lr 1e-3 --epochs 10 --early-stopping 3 --cache-features --out runs/lenet-5-9.ckpt\n  # the same network from scratch, for comparison:\n  finetune finetune --from runs/lenet-0-4.ckpt --scratch --unfreeze --data mnist --classes 5-9 --per-class 50 --out runs/scratch.ckpt"
    )]
    Finetune(FinetuneArgs),
    /// Evaluate a model on a data set's test split.
    #[command(
        after_help = "Example:\n  finetune eval --model runs/lenet-5-9.ckpt --data mnist --classes 5-9 --json"
    )]
    Eval(EvalArgs),
    /// Classify image files or texts (class names and probabilities), or run a model on tensors from a safetensors file and write `logits`.
    #[command(
        after_help = "Example:\n  finetune predict --model runs/photos.ckpt --input photo.png other.jpg --top-k 3\n  finetune predict --model runs/reviews.ckpt --text 'a lovely film' --json\n  finetune predict --model runs/lenet-5-9.ckpt --input batch.safetensors --out logits.safetensors"
    )]
    Predict(PredictArgs),
    /// What a data path holds: splits, classes and counts, image sizes and modes (or text lengths), channel mean and std.
    #[command(
        after_help = "Example:\n  finetune data my-photos/\n  finetune data reviews.csv --json"
    )]
    Data(DataCmdArgs),
    /// Build a model from a spec and PyTorch weights (.safetensors or .pth), print the load report, save a checkpoint.
    #[command(
        after_help = "Example:\n  finetune import --weights mnist_cnn.pth --spec mnist-cnn --out mnist-cnn.ckpt\n  finetune import --weights model.safetensors --spec spec.json --rename '^module\\.=' --out m.ckpt"
    )]
    Import(ImportArgs),
    /// Write a checkpoint's weights as safetensors with PyTorch names (for `load_state_dict`).
    #[command(
        after_help = "Example:\n  finetune export --model runs/lenet-5-9.ckpt --out lenet-5-9.safetensors"
    )]
    Export(ExportArgs),
    /// Show what a checkpoint, safetensors or .pth file holds: tensors, spec, metadata, parameter counts.
    #[command(
        after_help = "Example:\n  finetune inspect runs/lenet-5-9.ckpt\n  finetune inspect mnist_cnn.safetensors --json"
    )]
    Inspect(InspectArgs),
    /// Sweep the learning rate exponentially and suggest one (the model is left unchanged).
    #[command(
        name = "lr-find",
        after_help = "Example:\n  finetune lr-find --model lenet --data mnist --classes 0-4"
    )]
    LrFind(LrFindArgs),
    /// Measure which depth of a pretrained model transfers best: a linear head on the frozen features at every cut, compared on validation data.
    #[command(
        after_help = "Example:\n  finetune probe --from runs/lenet-0-4.ckpt --data mnist --classes 5-9 --per-class 50\n  finetune import --weights data/pretrained/mnist_cnn.safetensors --spec mnist-cnn --out mnist-cnn.ckpt\n  finetune probe --from mnist-cnn.ckpt --data fashion-mnist --per-class 100 --json"
    )]
    Probe(ProbeArgs),
    /// Fine-tune at every freeze point (nothing frozen, frozen through each layer with weights,
    /// all but the head) and from scratch, with one budget; rank by test accuracy.
    #[command(
        after_help = "Example:\n  finetune sweep --from runs/lenet-0-4.ckpt --data mnist --classes 5-9 --per-class 50\n  finetune sweep --from mnist-cnn.ckpt --data fashion-mnist --per-class 50 --epochs 10 --json"
    )]
    Sweep(SweepArgs),
    /// In seconds, without fine-tuning: LogME, source-target shift and relative gradient norms
    /// at every freeze point, and one recommendation (a freeze point, `none` or `scratch`).
    #[command(
        after_help = "Example:\n  finetune advise --from runs/lenet-0-4.ckpt --data mnist --classes 5-9 --per-class 50\n  finetune advise --from mnist-cnn.ckpt --data fashion-mnist --source-data mnist --json"
    )]
    Advise(AdviseArgs),
    /// Fine-tuned against from scratch on the same rows, budget and stopping rule, at several
    /// label budgets and seeds: test accuracy, and the time to reach the scratch run's best.
    #[command(
        after_help = "Example:\n  finetune compare --from runs/lenet-0-4.ckpt --data mnist --classes 5-9 --label-budget 10,50,100,all --seeds 3\n  finetune compare --from mnist-cnn.ckpt --data fashion-mnist --freeze-through features.0 --label-budget 50 --json"
    )]
    Compare(CompareArgs),
    /// Continue a prompt with a character language model (e.g. textgenrnn imported with its vocabulary).
    #[command(
        after_help = "Example:\n  finetune import --weights data/pretrained/textgenrnn/textgenrnn_char_lstm.safetensors --spec textgenrnn \\\n      --vocab data/pretrained/textgenrnn/textgenrnn_vocab.json --out tg.ckpt\n  finetune generate --model tg.ckpt --prompt 'What is the best way to ' --greedy\n  finetune generate --model tg.ckpt --prompt 'Hello' --temperature 0.7 --top-k 10 --max 200 --seed 3"
    )]
    Generate(GenerateArgs),
    /// Bits per character of a text under a character language model.
    #[command(
        after_help = "Example:\n  finetune score --model tg.ckpt --text 'I think this is the best thing I have ever seen in my life.' --json"
    )]
    Score(ScoreArgs),
}

/// The one training budget every run of `sweep` and both arms of `compare` get.
#[derive(Args, Debug, Clone)]
pub struct BudgetArgs {
    /// Epochs per run at most (each stops early, and keeps its best validation epoch);
    /// `auto`: enough for 400 optimizer steps, between 5 and 100 epochs (small data sets
    /// get more epochs, so that no run is cut short by a budget counted in epochs).
    #[arg(long, value_name = "N|auto", default_value = "auto")]
    pub epochs: String,
    /// Learning rate of every run (both arms of `compare`), or `LO:HI` for discriminative rates.
    #[arg(long, value_name = "LR|LO:HI", default_value = "1e-3")]
    pub lr: String,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam)]
    pub optimizer: OptimizerName,
    /// Weight decay (L2 for SGD/Adam/RMSprop, decoupled for AdamW).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Examples per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Stop a run after this many epochs without a better validation loss.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
}

/// `finetune sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The pretrained model: a native checkpoint, or an exported safetensors file.
    #[arg(long, value_name = "CKPT")]
    pub from: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Leave out the run from random weights.
    #[arg(long)]
    pub no_scratch: bool,
    /// Seeds data order, splits, the new head and the scratch weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the plot (`sweep.svg`, `sweep.png`) and `sweep.json` are written.
    #[arg(long, value_name = "DIR", default_value = "runs/sweep")]
    pub out_dir: PathBuf,
    /// Print one JSON object: {"rows": [{"freeze_through", "val_accuracy", "test_accuracy", "seconds", "trainable", ...}]}.
    #[arg(long)]
    pub json: bool,
}

/// `finetune compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The pretrained model: a native checkpoint, or an exported safetensors file.
    #[arg(long, value_name = "CKPT")]
    pub from: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Labelled training examples per class to compare at (`all`: every one), comma-separated.
    #[arg(long, value_name = "N,...|all", default_value = "all")]
    pub label_budget: String,
    /// Repeat each budget with this many seeds (new rows, head and scratch weights each).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Freeze the fine-tuned arm through this layer (`none`: train everything; default: what
    /// `advise` recommends at each budget, `none` where it says scratch).
    #[arg(long, value_name = "LAYER|none")]
    pub freeze_through: Option<String>,
    /// The source data for `advise`'s shift measurement (as `advise --source-data`).
    #[arg(long, value_name = "NAME[CLASSES]|PATH")]
    pub source_data: Option<String>,
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// The first seed (the others follow it).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where `compare.json` and the plots are written.
    #[arg(long, value_name = "DIR", default_value = "runs/compare")]
    pub out_dir: PathBuf,
    /// Print one JSON object: {"rows": [{"budget", "finetuned": {"test_accuracy", ...}, "scratch": {...}, "speedup_time_to_scratch_best"}]}.
    #[arg(long)]
    pub json: bool,
}

/// `finetune advise`.
#[derive(Args, Debug)]
pub struct AdviseArgs {
    /// The pretrained model: a native checkpoint, or an exported safetensors file.
    #[arg(long, value_name = "CKPT")]
    pub from: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// The data the model was pretrained on, to measure the shift of activations: a built-in
    /// name or a path, with classes as `mnist[0-4]` (default: what the checkpoint records).
    #[arg(long, value_name = "NAME[CLASSES]|PATH")]
    pub source_data: Option<String>,
    /// Target (and source) examples measured at most.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub examples: usize,
    /// Conv maps are pooled to at most this many values per example.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_width: usize,
    /// Seeds the sample, the split and the fitted head.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object: {"advice": {"freeze_through", "reason"}, "layers": [...]}.
    #[arg(long)]
    pub json: bool,
}

/// `finetune probe`.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The pretrained model: a native checkpoint, or an exported safetensors file.
    #[arg(long, value_name = "CKPT")]
    pub from: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Only these cut points (default: before every layer with weights but the first).
    #[arg(long, value_name = "LAYER", num_args = 1..)]
    pub at: Vec<String>,
    /// Epochs per head at most (each stops early after 5 without a better validation loss).
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Adam learning rate of the heads.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Examples per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Seeds data order, splits and head initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object (rows, best, advice).
    #[arg(long)]
    pub json: bool,
}

/// Which data set, which part of it, and from where.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// A built-in data set (mnist, fashion-mnist, digits, sentiment, names), or your own:
    /// a folder of class folders of images (or of train/, valid/ and test/ folders of them),
    /// a .csv/.tsv table with text and label columns, or a folder of train.csv, valid.csv, test.csv.
    /// (A folder named like a built-in is read as a path when written `./mnist`.)
    #[arg(long = "data", value_name = "NAME|PATH", value_parser = parse_data)]
    pub data: DataChoice,
    /// Read the full built-in data sets from DIR instead of the small embedded subsets
    /// (also taken from the FINETUNE_DATA environment variable).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep only these classes, relabelled 0.. in the order given: numbers or ranges (`0-4`, `3-5,9`) or class names (`cat,dog`).
    #[arg(long, value_name = "LIST")]
    pub classes: Option<String>,
    /// Use only N training examples per class (seeded), for small-data fine-tuning.
    #[arg(long, value_name = "N")]
    pub per_class: Option<usize>,
    /// Fraction of the training examples held out for validation (when the data has no validation split).
    #[arg(long, value_name = "F", default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Your own data without a test split (no test/ folder or test.csv): the fraction carved out
    /// as the test split (stratified, with a fixed seed so every run tests on the same examples).
    #[arg(long, value_name = "F", default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Tables: the column holding the text.
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub text_column: String,
    /// Tables: the column holding the label.
    #[arg(long, value_name = "NAME", default_value = "label")]
    pub label_column: String,
    /// Skip (and count) images that do not decode and table rows without a usable text or label,
    /// instead of stopping at the first with an error.
    #[arg(long)]
    pub skip_bad: bool,
    /// Text classification: texts longer than this many characters are cut (the run says how many).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_len: usize,
    /// How images are fitted to the model's input size: `stretch` resizes to H x W,
    /// `center` resizes keeping the aspect ratio and crops the center (default: what the model
    /// was trained with, else stretch).
    #[arg(long, value_enum, value_name = "HOW")]
    pub crop: Option<CropName>,
}

/// `--data`: a built-in name or a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataChoice {
    Builtin(DataName),
    Path(PathBuf),
}

impl std::fmt::Display for DataChoice {
    /// As written on the command line (a path with spaces quoted).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataChoice::Builtin(n) => match n.to_possible_value() {
                Some(v) => f.write_str(v.get_name()),
                None => write!(f, "{n:?}"),
            },
            DataChoice::Path(p) => {
                let p = p.display().to_string();
                if p.contains(char::is_whitespace) {
                    write!(f, "'{p}'")
                } else {
                    f.write_str(&p)
                }
            }
        }
    }
}

pub(crate) fn parse_data(s: &str) -> Result<DataChoice, String> {
    if s.is_empty() {
        return Err("give a built-in data set name or a path".into());
    }
    Ok(match DataName::from_str(s, true) {
        Ok(name) => DataChoice::Builtin(name),
        Err(_) => DataChoice::Path(PathBuf::from(s)),
    })
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipeName {
    Fastai,
    Ulmfit,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropName {
    Stretch,
    Center,
}

impl CropName {
    /// The library's crop.
    pub fn crop(self) -> finetune_data::user::Crop {
        match self {
            CropName::Stretch => finetune_data::user::Crop::Stretch,
            CropName::Center => finetune_data::user::Crop::Center,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataName {
    Mnist,
    FashionMnist,
    Digits,
    Sentiment,
    Names,
    /// Shakespeare's plays as one text (for `--task lm`).
    Shakespeare,
}

/// `finetune data`.
#[derive(Args, Debug)]
pub struct DataCmdArgs {
    /// An image folder, a .csv/.tsv table (or folder of them) or a .txt corpus (or folder of them).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Tables: the column holding the text.
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub text_column: String,
    /// Tables: the column holding the label.
    #[arg(long, value_name = "NAME", default_value = "label")]
    pub label_column: String,
    /// List (and count) images that do not decode and unusable table rows instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// Print one JSON object (kind, classes, splits with counts, sizes, modes, mean, std).
    #[arg(long)]
    pub json: bool,
}

/// How to train: optimizer, rates, schedule, monitoring.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Epochs to train [default: 5; with `--recipe ulmfit`, enough for every unfreezing
    /// stage to take at least 50 steps, and the last stage two].
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Examples per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate, or `LO:HI` for discriminative rates spread geometrically from the first group to the head.
    #[arg(long, value_name = "LR|LO:HI", default_value = "1e-3")]
    pub lr: String,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam)]
    pub optimizer: OptimizerName,
    /// Weight decay (L2 for sgd/adam/rmsprop, decoupled for adamw).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleName::Constant)]
    pub schedule: ScheduleName,
    /// `step` schedule: multiply the rate by --gamma every this many epochs.
    #[arg(long, value_name = "EPOCHS", default_value_t = 1)]
    pub step_size: usize,
    /// `step` schedule: the factor applied every --step-size epochs.
    #[arg(long, default_value_t = 0.5)]
    pub gamma: f64,
    /// `one-cycle`: share of training spent warming up (fastai's pct_start).
    #[arg(long, value_name = "F", default_value_t = 0.25)]
    pub pct_start: f64,
    /// `one-cycle`: the rate starts at max/DIV (fastai's div).
    #[arg(long, default_value_t = 25.0)]
    pub div: f64,
    /// `one-cycle`: the rate ends at max/(DIV·DIV_FINAL) (fastai's div_final).
    #[arg(long, default_value_t = 1e5)]
    pub div_final: f64,
    /// `cosine`: share of training spent in linear warm-up.
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    pub warmup: f64,
    /// `slanted-triangular`: share of training spent rising (ULMFiT's cut_frac).
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    pub cut_frac: f64,
    /// `slanted-triangular`: the lowest rate is max/RATIO (ULMFiT's ratio).
    #[arg(long, default_value_t = 32.0)]
    pub ratio: f64,
    /// SGD and RMSprop momentum (one-cycle cycles SGD's momentum between 0.95 and 0.85 instead).
    #[arg(long, value_name = "M")]
    pub momentum: Option<f64>,
    /// Stop when a training or validation loss exceeds F times the validation loss
    /// before training (a non-finite loss always stops the run); `off` checks only finiteness.
    #[arg(long, value_name = "F|off", default_value = "10")]
    pub divergence_factor: String,
    /// Rescale gradients to at most this global L2 norm.
    #[arg(long, value_name = "NORM")]
    pub clip_grad_norm: Option<f64>,
    /// Label smoothing for the cross-entropy.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Stop when the monitored metric has not improved for P epochs.
    #[arg(long, value_name = "P")]
    pub early_stopping: Option<usize>,
    /// Smallest change that counts as an improvement for early stopping.
    #[arg(long, default_value_t = 0.0)]
    pub min_delta: f64,
    /// Metric that decides the best epoch and early stopping.
    #[arg(long, value_enum, default_value_t = MonitorName::ValLoss)]
    pub monitor: MonitorName,
    /// Keep the last epoch's weights instead of restoring the best epoch's.
    #[arg(long)]
    pub keep_last: bool,
    /// Randomly shift training images by up to N pixels (augmentation; disables --cache-features).
    #[arg(long, value_name = "N")]
    pub augment_shift: Option<usize>,
    /// Seed for data order, initialisation, dropout and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Name of the run folder under --runs-dir (default: derived from the output file name).
    #[arg(long)]
    pub run_name: Option<String>,
    /// Where run folders go.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Write TensorBoard event files here, in Keras's layout (DIR/train, DIR/validation;
    /// epoch_loss, epoch_accuracy, epoch_learning_rate): `tensorboard --logdir DIR`.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// With --tensorboard: a histogram of every trainable parameter after each epoch.
    #[arg(long, requires = "tensorboard")]
    pub tensorboard_histograms: bool,
    /// Print the final summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Allow --out to be the file the run starts from (it is replaced by the result).
    #[arg(long)]
    pub overwrite: bool,
}

impl TrainArgs {
    /// Epochs when `--epochs` is not given.
    pub const DEFAULT_EPOCHS: usize = 5;

    /// `--epochs`, or its default.
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(Self::DEFAULT_EPOCHS)
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerName {
    Sgd,
    Adam,
    Adamw,
    Rmsprop,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleName {
    Constant,
    Step,
    Cosine,
    OneCycle,
    SlantedTriangular,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorName {
    ValLoss,
    ValAccuracy,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// A much shorter run (for tests and a first look).
    #[arg(long)]
    pub quick: bool,
    /// Only the second part: the real pretrained MNIST CNN fine-tuned to Fashion-MNIST.
    #[arg(long)]
    pub pretrained: bool,
    /// Run on the full data sets in DIR (also FINETUNE_DATA).
    #[arg(long = "data-dir", alias = "data", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seed for everything.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the run folder goes.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What a run trains the model to do.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskName {
    /// Predict each example's label.
    #[default]
    Classify,
    /// Predict the next character of a text (labels unused): a character language model.
    Lm,
}

/// Language-model training (`--task lm`).
#[derive(Args, Debug, Clone)]
pub struct LmArgs {
    /// Characters seen fewer times than this in the corpus read as `unk` (the vocabulary is built from the corpus).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_count: usize,
    /// Characters per training window (backpropagation through time is truncated there).
    #[arg(long, value_name = "T", default_value_t = 64)]
    pub bptt: usize,
    /// Built-in char-lstm / char-gru language models: hidden units per recurrent layer.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub hidden: usize,
    /// Built-in language models: stacked recurrent layers.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub layers: usize,
    /// Built-in language models: the embedding width.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub embedding_dim: usize,
    /// Share of the corpus (its end) held out: half for validation, half for the test.
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    pub held_out: f64,
}

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// A spec file (JSON) or a built-in model name (lenet, mnist-cnn, bn-cnn, char-lstm, char-gru).
    #[arg(long, value_name = "SPEC|BUILTIN")]
    pub model: String,
    /// `lm`: train a character language model on a text (`--data shakespeare|FILE.txt|DIR|TABLE`).
    #[arg(long, value_enum, default_value_t = TaskName::Classify)]
    pub task: TaskName,
    #[command(flatten)]
    pub lm: LmArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// The checkpoint to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// The model to start from: a native checkpoint, or an exported safetensors file.
    #[arg(long, value_name = "CKPT")]
    pub from: PathBuf,
    /// `lm`: adapt a language model to the data's text, labels unused (ULMFiT's second stage).
    #[arg(long, value_enum, default_value_t = TaskName::Classify)]
    pub task: TaskName,
    /// Characters of the data's training text the model's vocabulary lacks (seen at least
    /// --min-count times) become new ids, their embedding rows (and a language model's output
    /// rows) the mean of the existing ones, instead of reading as `unk`.
    #[arg(long)]
    pub extend_vocab: bool,
    #[command(flatten)]
    pub lm: LmArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub peft: PeftArgs,
    /// Output classes of the new head (default: the data's classes). A new head
    /// is made whenever this differs from the model's.
    #[arg(long, value_name = "N")]
    pub head: Option<usize>,
    /// Replace the final classifier even when the number of classes matches.
    #[arg(long)]
    pub new_head: bool,
    /// Cut the network at this top-level layer (index or name): it and every later layer are replaced by a new head.
    #[arg(long, value_name = "LAYER")]
    pub cut_at: Option<String>,
    /// Hidden sizes of an MLP head for --cut-at, e.g. `256,128`.
    #[arg(long, value_name = "H1,H2", value_delimiter = ',')]
    pub head_hidden: Vec<usize>,
    /// Freeze parameters matching these patterns (`0.*`, `features.*`).
    #[arg(long, value_name = "GLOB", num_args = 1..)]
    pub freeze: Vec<String>,
    /// Freeze parameter groups before N (fastai's freeze_to; one group per layer with parameters).
    #[arg(long, value_name = "N")]
    pub freeze_to: Option<usize>,
    /// Freeze these top-level layers, e.g. `0..4`.
    #[arg(long, value_name = "A..B")]
    pub freeze_layers: Option<String>,
    /// Train everything (the default is to freeze all but the head).
    #[arg(long)]
    pub unfreeze: bool,
    /// Unfreeze one more parameter group (from the top) every K epochs.
    #[arg(long, value_name = "K")]
    pub gradual: Option<usize>,
    /// BatchNorm inside frozen blocks.
    #[arg(long, value_enum, default_value_t = BnPolicyName::Freeze)]
    pub bn: BnPolicyName,
    /// Run the frozen, deterministic prefix once and train the rest on cached features.
    #[arg(long)]
    pub cache_features: bool,
    /// A recipe instead of a plain fit. `--recipe` alone (`fastai`): fastai's fine_tune, the head
    /// only for --frozen-epochs (one-cycle), then everything with discriminative rates.
    /// `--recipe ulmfit`: ULMFiT's gradual unfreezing (one more layer group from the top per
    /// stage; a stage is one epoch, or as many as make 50 steps on small data, --gradual sets
    /// it), discriminative rates (each group below the rate of the one above / 2.6) and a slanted
    /// triangular schedule (cut_frac 0.1, ratio 32); --lr is the top group's rate (1e-2 when
    /// --lr is left at its default); the head-only stage runs on cached features.
    #[arg(long, value_enum, value_name = "RECIPE", num_args = 0..=1, default_missing_value = "fastai")]
    pub recipe: Option<RecipeName>,
    /// Epochs with the body frozen in --recipe.
    #[arg(long, default_value_t = 1)]
    pub frozen_epochs: usize,
    /// Re-initialise every weight: the same network trained from scratch, for comparisons.
    #[arg(long)]
    pub scratch: bool,
    /// Continue an interrupted run from its training checkpoint (`last.ckpt` in the run folder).
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
    /// The checkpoint to write (the best weights).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnPolicyName {
    /// Frozen blocks keep their BatchNorm weights and statistics.
    Freeze,
    /// BatchNorm affine parameters train; statistics stay frozen.
    TrainAffine,
    /// BatchNorm trains and updates statistics (fastai's train_bn).
    TrainBn,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model: a native checkpoint or an exported safetensors file.
    #[arg(long, value_name = "CKPT")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Examples per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Print one JSON object (accuracy, loss, n, per_class_accuracy, confusion, top_k).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A native checkpoint, or a safetensors weights file with --spec.
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// The spec (JSON file or built-in name) for a plain safetensors --model.
    #[arg(long, value_name = "SPEC")]
    pub spec: Option<String>,
    /// Image files (PNG, JPEG) to classify; for a text model, text files with one input per line.
    /// Or one safetensors file of tensors with --out: `input` (f32 [N,C,H,W] images or i64 [N,T]
    /// token ids) and optional i64 `lengths` [N]; its images must already be normalised as the
    /// model expects (`inspect` shows its `normalize`), or be pixels in [0, 1] with --normalize.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// A text to classify, for a text model (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub text: Vec<String>,
    /// Show the K most probable classes of each input.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub top_k: usize,
    /// Print a JSON array: one {"file", "label", "probability", "top"} per input.
    #[arg(long)]
    pub json: bool,
    /// Image files: how they are fitted to the model's input (default: as in its training).
    #[arg(long, value_enum, value_name = "HOW")]
    pub crop: Option<CropName>,
    /// Safetensors input: the images are pixels in [0, 1]: apply the model's own normalisation (mean, std per channel) first.
    #[arg(long)]
    pub normalize: bool,
    /// Safetensors input: where to write `logits` [N, classes].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// PyTorch weights: .safetensors or .pth/.pt.
    #[arg(long, value_name = "FILE", required_unless_present = "adapter")]
    pub weights: Option<PathBuf>,
    /// The model spec: a JSON file or a built-in name.
    #[arg(long, value_name = "SPEC", required_unless_present = "adapter")]
    pub spec: Option<String>,
    /// A LoRA adapter folder in PEFT's layout (from `finetune export --adapter`), applied to --from.
    #[arg(long, value_name = "DIR", requires = "from", conflicts_with_all = ["weights", "spec"])]
    pub adapter: Option<PathBuf>,
    /// With --adapter: the base model's checkpoint.
    #[arg(long, value_name = "CKPT", requires = "adapter")]
    pub from: Option<PathBuf>,
    /// Rename file tensors before matching: `REGEX=REPLACEMENT` (repeatable), e.g. `^module\.=`.
    #[arg(long, value_name = "RE=REPL")]
    pub rename: Vec<String>,
    /// Keep only tensors under this key prefix (e.g. `state_dict`), stripped.
    #[arg(long, value_name = "PREFIX")]
    pub select: Option<String>,
    /// Tolerate tensors in the file that the model does not have.
    #[arg(long)]
    pub non_strict: bool,
    /// Model tensors (names or globs) that are new and stay initialised, e.g. a new head.
    #[arg(long, value_name = "GLOB")]
    pub new: Vec<String>,
    /// The file uses Keras names and layouts (detected when its tensors have Keras names such as `lstm1.recurrent_kernel`).
    #[arg(long)]
    pub keras: bool,
    /// Accept NaN, infinite and absurdly large values (above 1e12) in the
    /// weights or adapter file; refused by default, with the tensor named.
    #[arg(long)]
    pub allow_non_finite: bool,
    /// A character vocabulary to store with the model: a finetune vocabulary, or
    /// textgenrnn's `{"char": id}` JSON (ids from 1, 0 padding, `<s>` the start token).
    #[arg(long, value_name = "JSON")]
    pub vocab: Option<PathBuf>,
    /// The output class names to store with the model: a text file with one name per line,
    /// line i naming output i (e.g. `imagenet_classes.txt`); as many lines as outputs.
    #[arg(long, value_name = "FILE")]
    pub class_names: Option<PathBuf>,
    /// The checkpoint to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A native checkpoint.
    #[arg(long, value_name = "CKPT")]
    pub model: PathBuf,
    /// The safetensors file to write (PyTorch names; LoRA adapters merged), or with --merge
    /// and a `.ckpt` name, a native checkpoint.
    #[arg(long, value_name = "FILE", required_unless_present = "adapter")]
    pub out: Option<PathBuf>,
    /// Write the LoRA adapters, head and BatchNorm statistics in PEFT's folder layout
    /// (adapter_model.safetensors, adapter_config.json).
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Fold LoRA adapters into plain weights (W + s·B·A) before writing --out; refuses if a
    /// merged weight is not finite.
    #[arg(long, requires = "out")]
    pub merge: bool,
    /// What --out is: safetensors with PyTorch names (default), an ONNX model (opset 17;
    /// inputs `input` and, for sequence models, `lengths`; output `logits`), or `pytorch`: a
    /// folder with a generated nn.Module and a DistributedDataParallel training script.
    /// Default: from --out's extension (`.onnx`), else safetensors.
    #[arg(long, value_enum, value_name = "FORMAT", requires = "out")]
    pub format: Option<ExportFormat>,
}

/// `export --format` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Safetensors,
    Onnx,
    /// A folder: model.py (an nn.Module with the model's parameter names), model.safetensors,
    /// spec.json, config.json, train_ddp.py (torchrun-ready DDP training) and a README.
    Pytorch,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A character language model checkpoint (with its vocabulary).
    #[arg(long, value_name = "CKPT")]
    pub model: PathBuf,
    /// The text to continue.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Always the most likely next character (the default without --temperature).
    #[arg(long, conflicts_with = "temperature")]
    pub greedy: bool,
    /// Sample from softmax(logits / T).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
    /// With --temperature: sample among the K likeliest characters only.
    #[arg(long, value_name = "K", requires = "temperature")]
    pub top_k: Option<usize>,
    /// At most this many characters (fewer when the model ends the text).
    #[arg(long, default_value_t = 200)]
    pub max: usize,
    /// Seeds the sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A character language model checkpoint (with its vocabulary).
    #[arg(long, value_name = "CKPT")]
    pub model: PathBuf,
    /// The text to score.
    #[arg(long)]
    pub text: String,
    /// Print `{"bits_per_char": ..., "bits_per_char_all": ..., "chars": ...}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A native checkpoint, a safetensors file or a PyTorch .pth.
    pub file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LrFindArgs {
    /// A checkpoint, a spec file or a built-in model name.
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Optimizer used for the sweep.
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam)]
    pub optimizer: OptimizerName,
    /// First learning rate.
    #[arg(long, default_value_t = 1e-7)]
    pub start_lr: f64,
    /// Last learning rate.
    #[arg(long, default_value_t = 10.0)]
    pub end_lr: f64,
    /// Steps in the sweep.
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Examples per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The run folder under --runs-dir for the curve (lr_find.csv, lr_find.json, lr_find.svg, lr_find.png).
    #[arg(long, default_value = "lr-find")]
    pub run_name: String,
    /// Where run folders go.
    #[arg(long, default_value = "runs")]
    pub runs_dir: std::path::PathBuf,
}

/// Parameter-efficient fine-tuning: LoRA, BitFit, BatchNorm-only.
#[derive(Args, Debug, Clone)]
pub struct PeftArgs {
    /// LoRA of this rank: each targeted weight is frozen and learns W + s·B·A instead
    /// (s = alpha/rank, or alpha/√rank with --rslora; B starts at zero, so step 0 is the base).
    #[arg(long, value_name = "RANK")]
    pub lora: Option<usize>,
    /// LoRA's alpha.
    #[arg(long, value_name = "A", default_value_t = 8.0, requires = "lora")]
    pub lora_alpha: f64,
    /// Weights to adapt, by full name or module path (globs); default: every Linear, Conv2d,
    /// Embedding and recurrent weight outside the head.
    #[arg(long, value_name = "GLOB", num_args = 1.., requires = "lora")]
    pub lora_targets: Vec<String>,
    /// Rank-stabilised LoRA: scale by alpha/√rank.
    #[arg(long, requires = "lora")]
    pub rslora: bool,
    /// LoRA dropout: the probability of dropping an input feature of each update while
    /// training (PEFT's `lora_dropout`; here one mask per batch, as ΔW is formed per batch).
    #[arg(long, value_name = "P", default_value_t = 0.0, requires = "lora")]
    pub lora_dropout: f64,
    /// Train only these (and any LoRA adapters): `bias` (BitFit), `norm` (BatchNorm's affine
    /// parameters), `head`; comma-separated or repeated; a new head always trains.
    #[arg(long = "train", value_enum, value_name = "WHAT", value_delimiter = ',', num_args = 1..)]
    pub train_only: Vec<TrainOnlyName>,
}

/// `--train` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainOnlyName {
    Bias,
    Norm,
    Head,
}
