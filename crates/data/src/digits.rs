//! The UCI 8x8 digits CSV (scikit-learn's `digits.csv.gz`): 64 pixels 0..=16, then the label.

use crate::compress::maybe_gunzip;
use crate::dataset::digit_class_names;
use crate::error::{DataError, Result};
use crate::image::{ImageDataset, ImageDims};

/// Side of a digits image.
pub const DIGITS_SIDE: usize = 8;
/// Largest pixel value: each cell counts set pixels in a 4x4 block.
pub const DIGITS_PIXEL_MAX: u8 = 16;

/// Parses the digits CSV (raw or gzip); `file` names it in errors.
///
/// Each non-empty line holds 65 comma-separated integers. Errors, with the
/// 1-based line number, on a wrong field count, a non-integer, a pixel
/// above 16 or a label above 9. The result has `pixel_max` 16.
pub fn parse_digits_csv(bytes: &[u8], file: &str) -> Result<ImageDataset> {
    let raw = maybe_gunzip(bytes, file)?;
    let text = std::str::from_utf8(&raw).map_err(|e| DataError::Utf8 {
        file: file.to_string(),
        offset: e.valid_up_to(),
    })?;
    let per_image = DIGITS_SIDE * DIGITS_SIDE;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let start = pixels.len();
        let mut fields = 0;
        for (col, field) in line.split(',').enumerate() {
            fields += 1;
            if col > per_image {
                continue;
            }
            let value: u8 = field.trim().parse().map_err(|_| {
                DataError::line(
                    file,
                    line_no,
                    format!("field {} ({field:?}) is not a small integer", col + 1),
                )
            })?;
            let max = if col == per_image {
                9
            } else {
                DIGITS_PIXEL_MAX
            };
            if value > max {
                return Err(DataError::line(
                    file,
                    line_no,
                    format!("field {} is {value}, above the maximum {max}", col + 1),
                ));
            }
            if col == per_image {
                labels.push(usize::from(value));
            } else {
                pixels.push(value);
            }
        }
        if fields != per_image + 1 {
            pixels.truncate(start);
            return Err(DataError::line(
                file,
                line_no,
                format!(
                    "expected {} comma-separated values, found {fields}",
                    per_image + 1
                ),
            ));
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty {
            what: file.to_string(),
            reason: "no rows".into(),
        });
    }
    ImageDataset::new(
        pixels,
        labels,
        ImageDims::new(1, DIGITS_SIDE, DIGITS_SIDE),
        digit_class_names(),
    )?
    .with_pixel_max(DIGITS_PIXEL_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labelled;

    fn row(label: u8, fill: u8) -> String {
        let mut v = vec![fill.to_string(); 64];
        v.push(label.to_string());
        v.join(",")
    }

    #[test]
    fn parses_rows_raw_and_gzip() {
        let csv = format!("{}\n{}\n", row(3, 16), row(0, 1));
        for bytes in [
            csv.as_bytes().to_vec(),
            crate::compress::gzip(csv.as_bytes()),
        ] {
            let d = parse_digits_csv(&bytes, "digits.csv").unwrap();
            assert_eq!(d.shape(), [2, 1, 8, 8]);
            assert_eq!(d.labels(), &[3, 0]);
            assert_eq!(d.pixel_sum(), 64 * 17);
            assert_eq!(d.pixel_max(), 16);
        }
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let good = row(1, 2);
        let short = good.rsplit_once(',').unwrap().0.to_string();
        let long = format!("{good},4");
        let word = good.replacen('2', "x", 1);
        let big = good.replacen('2', "17", 1);
        let label = row(10, 2);
        for bad in [short, long, word, big, label] {
            let csv = format!("{good}\n{bad}\n");
            let err = parse_digits_csv(csv.as_bytes(), "digits.csv").unwrap_err();
            assert!(matches!(err, DataError::BadLine { line: 2, .. }), "{err}");
            assert!(err.to_string().contains("digits.csv, line 2"), "{err}");
        }
        assert!(matches!(
            parse_digits_csv(b"\n", "e"),
            Err(DataError::Empty { .. })
        ));
    }
}
