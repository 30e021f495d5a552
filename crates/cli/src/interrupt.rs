//! Ctrl-C: the first press lets the current batch finish, saves the run and
//! prints how to resume it; the second ends the process at once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The exit code of a run stopped by Ctrl-C (128 + SIGINT, as a shell
/// reports it): distinct from a failure's 1 and bad usage's 2.
pub const INTERRUPTED_EXIT_CODE: u8 = 130;

/// A run that stopped because the user asked it to, after saving: not an
/// error, so it is printed as it is (no `error:`) and exits with
/// [`INTERRUPTED_EXIT_CODE`].
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// The flag the trainer polls after each batch.
pub fn flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let presses = AtomicUsize::new(0);
        let set = flag.clone();
        // if a handler cannot be installed (another library has one), a
        // Ctrl-C simply ends the process as it would without us
        let _ = ctrlc::set_handler(move || {
            if presses.fetch_add(1, Ordering::SeqCst) == 0 {
                set.store(true, Ordering::SeqCst);
                eprintln!(
                    "\ninterrupted: finishing this batch and saving (Ctrl-C again to quit now)"
                );
            } else {
                std::process::exit(i32::from(INTERRUPTED_EXIT_CODE));
            }
        });
        flag
    })
    .clone()
}

/// The command line that continues this run from `last`: the same command
/// and flags, with `--resume LAST` (a `pretrain` continues as `finetune
/// --from LAST`, which takes the same data and training flags).
pub fn resume_command(last: &Path) -> String {
    let args: Vec<String> = std::env::args().collect();
    resume_args(&args, &last.display().to_string()).join(" ")
}

fn resume_args(args: &[String], last: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut it = args.iter();
    let program = it.next().map_or("finetune".to_string(), |p| {
        Path::new(p)
            .file_name()
            .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
    });
    out.push(program);
    let mut pretrain = false;
    while let Some(a) = it.next() {
        match a.as_str() {
            "pretrain" if !pretrain => {
                pretrain = true;
                out.push("finetune".into());
            }
            "--model" if pretrain => {
                it.next();
                out.extend(["--from".to_string(), last.to_string()]);
            }
            "--resume" => {
                it.next();
            }
            _ if a.starts_with("--resume=") => {}
            _ => out.push(quote(a)),
        }
    }
    out.extend(["--resume".to_string(), last.to_string()]);
    out
}

/// `a` as a shell word.
fn quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn a_finetune_resumes_with_the_same_flags() {
        let got = resume_args(
            &args("/usr/bin/finetune finetune --from a.ckpt --data digits --out b.ckpt"),
            "runs/b/last.ckpt",
        );
        assert_eq!(
            got.join(" "),
            "finetune finetune --from a.ckpt --data digits --out b.ckpt --resume runs/b/last.ckpt"
        );
        // an earlier --resume is replaced
        let again = resume_args(&got, "runs/b/last.ckpt");
        assert_eq!(again, got);
    }

    #[test]
    fn a_pretrain_resumes_as_a_finetune_from_its_checkpoint() {
        let got = resume_args(
            &args("finetune pretrain --model lenet --data mnist --classes 0-4 --out m.ckpt"),
            "runs/m/last.ckpt",
        );
        assert_eq!(
            got.join(" "),
            "finetune finetune --from runs/m/last.ckpt --data mnist --classes 0-4 --out m.ckpt --resume runs/m/last.ckpt"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
