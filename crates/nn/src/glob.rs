//! [`glob_match`]: shell-style patterns over dotted parameter names
//! (`features.*`, `*.bias`, `classifier.?.weight`), the one matcher behind
//! freezing by name and loading with `--ignore`.

/// Whether `name` matches `pattern`: `*` is any run of characters (dots
/// included), `?` exactly one character, anything else itself.
///
/// Greedy with one backtrack point (the last `*`), so the time is at most
/// `O(len(pattern) · len(name))`: a pattern such as `*a*a*a…b` against a
/// long name of `a`s — exponential for a naive recursive matcher — is cheap.
///
/// ```
/// use finetune_nn::glob_match;
/// assert!(glob_match("features.*", "features.3.weight"));
/// assert!(glob_match("*.bias", "classifier.2.bias"));
/// assert!(!glob_match("classifier.2.*", "classifier.20.weight"));
/// ```
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // the last `*` seen, and where in the name its run currently ends
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            // let the last `*` swallow one more character
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("classifier.2.*", "classifier.2.weight"));
        assert!(!glob_match("classifier.2.*", "classifier.20.weight"));
        assert!(glob_match("*.bias", "a.b.bias"));
        assert!(glob_match("a.?.w", "a.1.w"));
        assert!(!glob_match("a.?.w", "a.12.w"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("?", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("**.w", "x.w"));
        assert!(glob_match("0.*", "0.weight"));
        assert!(!glob_match("0.*", "10.weight"));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        // exponential for a recursive matcher: 2^30 paths
        let pattern = format!("{}b", "*a".repeat(30));
        let name = "a".repeat(5000);
        let start = std::time::Instant::now();
        assert!(!glob_match(&pattern, &name));
        assert!(glob_match(&pattern, &(name.clone() + "b")));
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }
}
