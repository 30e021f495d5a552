//! The VADER sentiment ground-truth files: `ID<TAB>MEAN<TAB>TEXT` per line.
//!
//! Lines end in CRLF with none after the last; LF-only copies and a final
//! line break are accepted too. The binary label is the sign of the mean
//! human rating (positive = 1, negative = 0).

use crate::error::{DataError, Result};
use crate::text::labelled::TextDataset;

/// The four VADER corpora.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SentimentCorpus {
    /// Rotten Tomatoes movie-review snippets (10 605, nearly balanced; the natural target).
    Movies,
    /// Tweet-like texts (4 200, the shortest).
    Tweets,
    /// New York Times editorial snippets (5 190).
    NytEditorials,
    /// Amazon product-review snippets (3 708).
    AmazonReviews,
}

impl SentimentCorpus {
    /// Every corpus.
    pub const ALL: [SentimentCorpus; 4] = [
        SentimentCorpus::Movies,
        SentimentCorpus::Tweets,
        SentimentCorpus::NytEditorials,
        SentimentCorpus::AmazonReviews,
    ];

    /// The canonical file name.
    pub fn file_name(self) -> &'static str {
        match self {
            SentimentCorpus::Movies => "movieReviewSnippets_GroundTruth.txt",
            SentimentCorpus::Tweets => "tweets_GroundTruth.txt",
            SentimentCorpus::NytEditorials => "nytEditorialSnippets_GroundTruth.txt",
            SentimentCorpus::AmazonReviews => "amazonReviewSnippets_GroundTruth.txt",
        }
    }
}

/// One rated sentence.
#[derive(Clone, Debug, PartialEq)]
pub struct SentimentRecord {
    /// The identifier from the file (kept as text: some corpora use `n_m` ids).
    pub id: String,
    /// Mean human rating, -4 (extremely negative) to +4 (extremely positive).
    pub mean: f32,
    /// The sentence.
    pub text: String,
}

/// What to do with sentences whose mean rating is exactly zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroRating {
    /// Leave them out (the usual binary setup).
    #[default]
    Drop,
    /// Keep them as a third class, `neutral` (label 2).
    Neutral,
}

/// Class names of the binary task, by label.
pub const SENTIMENT_CLASSES: [&str; 2] = ["negative", "positive"];

/// Parses a ground-truth file (raw UTF-8 bytes); `file` names it in errors.
///
/// Errors on a line with fewer than three tab-separated fields, a rating
/// that is not a finite number, an empty text, or invalid UTF-8, giving the
/// 1-based line number.
pub fn parse_sentiment(bytes: &[u8], file: &str) -> Result<Vec<SentimentRecord>> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Err(DataError::Empty {
            what: file.to_string(),
            reason: "no sentences".into(),
        });
    }
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, raw)| parse_line(raw.strip_suffix(b"\r").unwrap_or(raw), file, i + 1))
        .collect()
}

fn parse_line(raw: &[u8], file: &str, line: usize) -> Result<SentimentRecord> {
    let text = std::str::from_utf8(raw).map_err(|e| {
        DataError::line(
            file,
            line,
            format!("invalid UTF-8 at column {}", e.valid_up_to() + 1),
        )
    })?;
    let mut fields = text.splitn(3, '\t');
    let (Some(id), Some(mean), Some(sentence)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(DataError::line(
            file,
            line,
            format!("expected ID<TAB>MEAN<TAB>TEXT, found {text:?}"),
        ));
    };
    let mean: f32 = mean
        .trim()
        .parse()
        .ok()
        .filter(|m: &f32| m.is_finite())
        .ok_or_else(|| DataError::line(file, line, format!("rating {mean:?} is not a number")))?;
    if sentence.trim().is_empty() {
        return Err(DataError::line(file, line, "the text is empty"));
    }
    Ok(SentimentRecord {
        id: id.to_string(),
        mean,
        text: sentence.to_string(),
    })
}

/// Labels records by the sign of their rating: negative 0, positive 1 (and neutral 2).
pub fn sentiment_dataset(records: &[SentimentRecord], zeros: ZeroRating) -> Result<TextDataset> {
    let mut texts = Vec::with_capacity(records.len());
    let mut labels = Vec::with_capacity(records.len());
    for r in records {
        let label = if r.mean > 0.0 {
            1
        } else if r.mean < 0.0 {
            0
        } else {
            match zeros {
                ZeroRating::Drop => continue,
                ZeroRating::Neutral => 2,
            }
        };
        texts.push(r.text.clone());
        labels.push(label);
    }
    let mut names: Vec<String> = SENTIMENT_CLASSES.iter().map(|s| s.to_string()).collect();
    if zeros == ZeroRating::Neutral {
        names.push("neutral".into());
    }
    TextDataset::new(texts, labels, names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labelled;

    const SAMPLE: &[u8] = b"1\t2.5\tGreat fun.\r\n2\t-1.25\tDull.\r\n3\t0\tA film.";

    #[test]
    fn parses_crlf_without_final_newline() {
        let r = parse_sentiment(SAMPLE, "s").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].mean, -1.25);
        assert_eq!(r[2].text, "A film.");
        let lf = parse_sentiment(b"1\t1\ta\n2\t-1\tb\n", "s").unwrap();
        assert_eq!(lf.len(), 2);
    }

    #[test]
    fn labels_by_sign_and_zeros_are_dropped_by_default() {
        let r = parse_sentiment(SAMPLE, "s").unwrap();
        let d = sentiment_dataset(&r, ZeroRating::Drop).unwrap();
        assert_eq!(d.labels(), &[1, 0]);
        assert_eq!(
            d.class_names(),
            &["negative".to_string(), "positive".to_string()]
        );
        let d = sentiment_dataset(&r, ZeroRating::Neutral).unwrap();
        assert_eq!(d.labels(), &[1, 0, 2]);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases: [&[u8]; 5] = [
            b"1\t2\tok\r\n2\t3 no text",
            b"1\t2\tok\r\n2\tabc\ttext",
            b"1\t2\tok\r\n\r\n3\t1\tx",
            b"1\t2\tok\r\n2\tNaN\tx",
            b"1\t2\tok\r\n2\t1\t\xff",
        ];
        for bytes in cases {
            let err = parse_sentiment(bytes, "tweets.txt").unwrap_err();
            assert!(matches!(err, DataError::BadLine { line: 2, .. }), "{err}");
            assert!(err.to_string().contains("tweets.txt, line 2"), "{err}");
        }
        assert!(matches!(
            parse_sentiment(b"", "e"),
            Err(DataError::Empty { .. })
        ));
    }
}
