//! [`CharVocab`]: characters ↔ integer ids, with optional padding, unknown and start ids.
//!
//! A character model is only reusable with the exact vocabulary it was
//! trained with, so the vocabulary is serde data saved beside the weights.
//! Its JSON form is a `{char: id}` object plus the special ids, which is
//! also how textgenrnn ships its vocabulary (see
//! [`CharVocab::from_textgenrnn_json`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Ids travel through `f32` batch tensors, which hold integers exactly only below 2^24.
pub const MAX_VOCAB_SIZE: usize = 1 << 24;

/// What to do with a character that has no id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unknown {
    /// Fail with [`DataError::UnknownChar`], naming the character and its offset.
    #[default]
    Error,
    /// Map it to the vocabulary's `unk` id (an error if it has none).
    UseUnk,
    /// Drop it: for a vocabulary without `unk` (an imported model's that
    /// cannot grow at prediction time), so no input is refused.
    Skip,
}

/// Which special ids a vocabulary built from characters reserves, in this order from id 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Specials {
    /// A padding id (0), for batches of unequal lengths.
    pub pad: bool,
    /// An id for characters not seen when the vocabulary was built.
    pub unk: bool,
    /// A start-of-sequence id.
    pub start: bool,
}

impl Specials {
    /// Padding (id 0) and unknown (id 1), the usual choice for classification.
    pub const PAD_UNK: Specials = Specials {
        pad: true,
        unk: true,
        start: false,
    };
}

/// A character vocabulary. Ids are `0..len()`; some may be special or unused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "VocabFile", into = "VocabFile")]
pub struct CharVocab {
    id_to_char: Vec<Option<char>>,
    char_to_id: HashMap<char, u32>,
    pad: Option<u32>,
    unk: Option<u32>,
    start: Option<u32>,
}

/// The serialised form: `{"size": n, "chars": {"a": 5, ...}, "pad": 0, "unk": 1, "start": null}`.
#[derive(Serialize, Deserialize)]
struct VocabFile {
    size: usize,
    chars: BTreeMap<String, u32>,
    pad: Option<u32>,
    unk: Option<u32>,
    start: Option<u32>,
}

impl CharVocab {
    /// The distinct characters of `text` in code-point order, after padding (0) and unknown (1).
    ///
    /// Sorting makes the ids independent of where characters first occur,
    /// so the same corpus always yields the same vocabulary. Errors on empty text.
    pub fn from_text(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(DataError::Empty {
                what: "text".into(),
                reason: "a vocabulary needs at least one character".into(),
            });
        }
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::from_chars(chars, Specials::PAD_UNK)
    }

    /// The given characters (duplicates ignored) in order, after the requested special ids.
    pub fn from_chars(chars: impl IntoIterator<Item = char>, specials: Specials) -> Result<Self> {
        let mut file = VocabFile {
            size: 0,
            chars: BTreeMap::new(),
            pad: None,
            unk: None,
            start: None,
        };
        let mut next = 0u32;
        let mut reserve = |wanted: bool| {
            wanted.then(|| {
                next += 1;
                next - 1
            })
        };
        file.pad = reserve(specials.pad);
        file.unk = reserve(specials.unk);
        file.start = reserve(specials.start);
        for c in chars {
            if let std::collections::btree_map::Entry::Vacant(e) = file.chars.entry(c.to_string()) {
                e.insert(next);
                next += 1;
            }
        }
        file.size = next as usize;
        Self::try_from(file)
    }

    /// Reads textgenrnn's `{char: id}` vocabulary JSON.
    ///
    /// Its ids start at 1; id 0 is padding; the entry `"<s>"` is the start
    /// token. There is no unknown id (encode with [`Unknown::Error`] or map
    /// characters yourself). `file` names the source in errors.
    pub fn from_textgenrnn_json(json: &str, file: &str) -> Result<Self> {
        let mut map: BTreeMap<String, u32> =
            serde_json::from_str(json).map_err(|source| DataError::Json {
                file: file.to_string(),
                source,
            })?;
        let start = map.remove("<s>");
        let size = map
            .values()
            .chain(start.iter())
            .max()
            .map_or(1, |&m| m as usize + 1);
        Self::try_from(VocabFile {
            size,
            chars: map,
            pad: Some(0),
            unk: None,
            start,
        })
    }

    /// This vocabulary with `chars` it lacks appended as new ids (in the
    /// order given, duplicates and known characters skipped): every
    /// existing id keeps its meaning, so a model's embedding only grows.
    pub fn extended(&self, chars: impl IntoIterator<Item = char>) -> Result<Self> {
        let mut file = VocabFile::from(self.clone());
        for c in chars {
            if let std::collections::btree_map::Entry::Vacant(e) = file.chars.entry(c.to_string()) {
                e.insert(file.size as u32);
                file.size += 1;
            }
        }
        Self::try_from(file)
    }

    /// This vocabulary with an `unk` id (appended as a new id if it has
    /// none, as textgenrnn's lacks one): characters it lacks can then be read.
    pub fn with_unk(&self) -> Result<Self> {
        if self.unk.is_some() {
            return Ok(self.clone());
        }
        let mut file = VocabFile::from(self.clone());
        file.unk = Some(file.size as u32);
        file.size += 1;
        Self::try_from(file)
    }

    /// The encoding policy this vocabulary allows without refusing input:
    /// `unk` when it has one, else unknown characters are dropped.
    pub fn lenient(&self) -> Unknown {
        if self.unk.is_some() {
            Unknown::UseUnk
        } else {
            Unknown::Skip
        }
    }

    /// A label per id: its character, or `<id>` for special and unused ids
    /// (what a language model's outputs are called).
    pub fn id_labels(&self) -> Vec<String> {
        self.id_to_char
            .iter()
            .enumerate()
            .map(|(id, c)| c.map_or_else(|| format!("<{id}>"), |c| c.to_string()))
            .collect()
    }

    /// Reads the JSON written by [`CharVocab::to_json`].
    pub fn from_json(json: &str, file: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|source| DataError::Json {
            file: file.to_string(),
            source,
        })
    }

    /// The vocabulary as JSON, to save beside a model.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The number of ids (characters, specials and unused ids): the embedding table size.
    pub fn len(&self) -> usize {
        self.id_to_char.len()
    }

    /// True when there are no ids at all.
    pub fn is_empty(&self) -> bool {
        self.id_to_char.is_empty()
    }

    /// The number of characters with an id.
    pub fn num_chars(&self) -> usize {
        self.char_to_id.len()
    }

    /// The id of `c`.
    pub fn id(&self, c: char) -> Option<u32> {
        self.char_to_id.get(&c).copied()
    }

    /// The character of `id`, `None` for special, unused or out-of-range ids.
    pub fn char(&self, id: u32) -> Option<char> {
        self.id_to_char.get(id as usize).copied().flatten()
    }

    /// The padding id.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// The unknown-character id.
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }

    /// The start-of-sequence id.
    pub fn start(&self) -> Option<u32> {
        self.start
    }

    /// Encodes `text`; see [`CharVocab::encode_source`].
    pub fn encode(&self, text: &str, unknown: Unknown) -> Result<Vec<u32>> {
        self.encode_source(text, "text", unknown)
    }

    /// Encodes `text`, naming `source` (a file, "example 12", ...) in errors.
    pub fn encode_source(&self, text: &str, source: &str, unknown: Unknown) -> Result<Vec<u32>> {
        let unk = match unknown {
            Unknown::Error => None,
            Unknown::UseUnk => Some(self.unk.ok_or_else(|| {
                DataError::Vocab("unknown characters should map to `unk`, but it has none".into())
            })?),
            Unknown::Skip => None,
        };
        let mut ids = Vec::with_capacity(text.len());
        for (offset, c) in text.chars().enumerate() {
            match (self.char_to_id.get(&c), unk) {
                (Some(&id), _) => ids.push(id),
                (None, Some(unk)) => ids.push(unk),
                (None, None) if unknown == Unknown::Skip => {}
                (None, None) => {
                    return Err(DataError::UnknownChar {
                        file: source.to_string(),
                        ch: c,
                        offset,
                    });
                }
            }
        }
        Ok(ids)
    }

    /// The characters of `ids`, skipping special ids; unmapped ids become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter(|&&id| Some(id) != self.pad && Some(id) != self.start)
            .map(|&id| self.char(id).unwrap_or('\u{FFFD}'))
            .collect()
    }
}

impl TryFrom<VocabFile> for CharVocab {
    type Error = DataError;

    fn try_from(file: VocabFile) -> Result<Self> {
        if file.size > MAX_VOCAB_SIZE {
            return Err(DataError::Vocab(format!(
                "{} ids do not fit in f32 batch tensors (at most {MAX_VOCAB_SIZE})",
                file.size
            )));
        }
        let mut id_to_char = vec![None; file.size];
        let mut taken = vec![false; file.size];
        let mut claim = |id: u32, what: &str| -> Result<usize> {
            let slot = id as usize;
            match taken.get_mut(slot) {
                None => Err(DataError::Vocab(format!(
                    "{what} has id {id}, outside 0..{}",
                    file.size
                ))),
                Some(true) => Err(DataError::Vocab(format!("{what} reuses id {id}"))),
                Some(t) => {
                    *t = true;
                    Ok(slot)
                }
            }
        };
        for (name, id) in [("pad", file.pad), ("unk", file.unk), ("start", file.start)] {
            if let Some(id) = id {
                claim(id, name)?;
            }
        }
        let mut char_to_id = HashMap::with_capacity(file.chars.len());
        for (key, id) in file.chars {
            let mut it = key.chars();
            let (Some(c), None) = (it.next(), it.next()) else {
                return Err(DataError::Vocab(format!(
                    "key {key:?} is not a single character"
                )));
            };
            let slot = claim(id, &format!("character {c:?}"))?;
            id_to_char[slot] = Some(c);
            char_to_id.insert(c, id);
        }
        Ok(CharVocab {
            id_to_char,
            char_to_id,
            pad: file.pad,
            unk: file.unk,
            start: file.start,
        })
    }
}

impl From<CharVocab> for VocabFile {
    fn from(v: CharVocab) -> Self {
        VocabFile {
            size: v.id_to_char.len(),
            chars: v
                .char_to_id
                .iter()
                .map(|(c, &id)| (c.to_string(), id))
                .collect(),
            pad: v.pad,
            unk: v.unk,
            start: v.start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extending_keeps_every_id_and_appends() {
        let v = CharVocab::from_text("ba").unwrap();
        let w = v.extended("cab!".chars()).unwrap();
        assert_eq!((w.id('a'), w.id('b')), (v.id('a'), v.id('b')));
        assert_eq!((w.id('c'), w.id('!')), (Some(4), Some(5)));
        assert_eq!(w.len(), v.len() + 2);
    }

    #[test]
    fn from_text_is_sorted_after_specials() {
        let v = CharVocab::from_text("hello").unwrap();
        assert_eq!((v.pad(), v.unk(), v.start()), (Some(0), Some(1), None));
        assert_eq!(v.len(), 6);
        assert_eq!(v.encode("ehlo", Unknown::Error).unwrap(), vec![2, 3, 4, 5]);
        assert_eq!(v.decode(&[3, 2, 4, 4, 5, 0]), "hello");
        assert!(CharVocab::from_text("").is_err());
    }

    #[test]
    fn unknown_policy_is_the_callers_choice() {
        let v = CharVocab::from_text("ab").unwrap();
        let err = v
            .encode_source("abc", "greeting.txt", Unknown::Error)
            .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::UnknownChar {
                    ch: 'c',
                    offset: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("greeting.txt"));
        assert_eq!(v.encode("abc", Unknown::UseUnk).unwrap(), vec![2, 3, 1]);
        assert_eq!(v.encode("a😀b", v.lenient()).unwrap(), vec![2, 1, 3]);
        let no_unk = CharVocab::from_chars("ab".chars(), Specials::default()).unwrap();
        assert!(matches!(
            no_unk.encode("c", Unknown::UseUnk),
            Err(DataError::Vocab(_))
        ));
        // without unk, lenient drops what it lacks; with_unk adds an id
        assert_eq!(no_unk.encode("c\0a", no_unk.lenient()).unwrap(), vec![0]);
        let grown = no_unk.with_unk().unwrap();
        assert_eq!((grown.unk(), grown.len()), (Some(2), 3));
        assert_eq!(grown.encode("a😀", grown.lenient()).unwrap(), vec![0, 2]);
    }

    #[test]
    fn serde_round_trip_keeps_every_id() {
        let v = CharVocab::from_chars(
            "zé\n".chars(),
            Specials {
                pad: true,
                unk: true,
                start: true,
            },
        )
        .unwrap();
        let json = v.to_json();
        let back = CharVocab::from_json(&json, "v.json").unwrap();
        assert_eq!(back, v);
        assert_eq!(back.id('\n'), Some(5));
        assert_eq!(back.start(), Some(2));
    }

    #[test]
    fn textgenrnn_layout() {
        let v = CharVocab::from_textgenrnn_json(r#"{"a": 1, "b": 2, "<s>": 3}"#, "v").unwrap();
        assert_eq!(
            (v.len(), v.pad(), v.start(), v.unk()),
            (4, Some(0), Some(3), None)
        );
        assert_eq!(v.encode("ba", Unknown::Error).unwrap(), vec![2, 1]);
    }

    #[test]
    fn inconsistent_files_are_rejected() {
        for bad in [
            r#"{"a": 1, "b": 1}"#,
            r#"{"ab": 1}"#,
            r#"{"a": 0}"#,
            r#"{"a": 99999999}"#,
            r#"not json"#,
        ] {
            assert!(CharVocab::from_textgenrnn_json(bad, "v").is_err(), "{bad}");
        }
        let out_of_range =
            r#"{"size": 2, "chars": {"a": 2}, "pad": 0, "unk": null, "start": null}"#;
        assert!(CharVocab::from_json(out_of_range, "v").is_err());
    }
}
