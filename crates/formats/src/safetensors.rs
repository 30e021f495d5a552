//! Strict safetensors reading and atomic writing.
//!
//! Layout: an 8-byte little-endian header length `N`, `N` bytes of UTF-8 JSON
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//! ..., "__metadata__": {"key": "value"}}`), then the data section. The
//! reader checks everything the format promises before copying a byte:
//!
//! * `N` is at most [`MAX_HEADER_BYTES`] and the header fits in the file;
//! * the header is a JSON object starting with `{`, no duplicate names,
//!   tensor entries with exactly the three fields, `__metadata__` a map of
//!   strings;
//! * every `data_offsets` range is inside the data section, and its length is
//!   `numel x dtype size`;
//! * the ranges, sorted, tile the data section exactly: contiguous, no
//!   overlap, no hole, nothing after the last tensor.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use crate::error::{FormatError, Result};
use crate::raw::{DType, NamedTensors, RawTensor, checked_nbytes, shape_u64};

/// The largest JSON header accepted (100 MB, as the reference implementation).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The content of a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct Safetensors {
    /// The tensors, in data-section order.
    pub tensors: NamedTensors,
    /// The `__metadata__` string map, if the file has one.
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Info {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

enum Entry {
    Tensor(String, Info),
    Metadata(Vec<(String, String)>),
}

/// The header object, in file order, with duplicate detection.
struct Header(Vec<Entry>);

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Header, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(key) = m.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate entry `{key}`")));
                    }
                    if key == "__metadata__" {
                        out.push(Entry::Metadata(m.next_value::<StringMap>()?.0));
                    } else {
                        let info = m
                            .next_value::<Info>()
                            .map_err(|e| de::Error::custom(format!("tensor `{key}`: {e}")))?;
                        out.push(Entry::Tensor(key, info));
                    }
                }
                Ok(Header(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON object of strings, in order, rejecting duplicate keys.
struct StringMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("__metadata__ as a JSON object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<StringMap, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!(
                            "duplicate __metadata__ key `{k}`"
                        )));
                    }
                    out.push((k, v));
                }
                Ok(StringMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads and validates a safetensors file.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Safetensors> {
    let path = path.as_ref();
    let bytes = finetune_files::read_capped(path, crate::MAX_WEIGHTS_FILE_BYTES, "a weights file")?;
    parse_safetensors(&bytes, &path.display().to_string())
}

/// Validates and decodes safetensors bytes; `label` names the source in errors.
pub fn parse_safetensors(bytes: &[u8], label: &str) -> Result<Safetensors> {
    let file = || label.to_string();
    let file_len = bytes.len() as u64;
    let Some(len_bytes) = bytes.first_chunk::<8>() else {
        return Err(FormatError::SafetensorsTooShort {
            file: file(),
            len: file_len,
        });
    };
    let declared = u64::from_le_bytes(*len_bytes);
    if declared > MAX_HEADER_BYTES {
        return Err(FormatError::SafetensorsHeaderTooLarge {
            file: file(),
            declared,
            limit: MAX_HEADER_BYTES,
        });
    }
    if declared > file_len - 8 {
        return Err(FormatError::SafetensorsHeaderBeyondFile {
            file: file(),
            declared,
            file_len,
        });
    }
    let header_end = 8 + declared as usize;
    let header_bytes = &bytes[8..header_end];
    let data = &bytes[header_end..];
    let data_len = data.len() as u64;

    if header_bytes.first() != Some(&b'{') {
        return Err(FormatError::SafetensorsHeader {
            file: file(),
            reason: "the header must be a JSON object starting with `{`".into(),
        });
    }
    let header: Header =
        serde_json::from_slice(header_bytes).map_err(|e| FormatError::SafetensorsHeader {
            file: file(),
            reason: e.to_string(),
        })?;

    let mut metadata = None;
    // (name, dtype, shape, begin, end)
    let mut infos: Vec<(String, DType, Vec<u64>, u64, u64)> = Vec::new();
    for entry in header.0 {
        match entry {
            Entry::Metadata(m) => metadata = Some(m.into_iter().collect::<BTreeMap<_, _>>()),
            Entry::Tensor(name, info) => {
                let dtype =
                    DType::from_name(&info.dtype).ok_or_else(|| FormatError::UnsupportedDType {
                        file: file(),
                        tensor: name.clone(),
                        dtype: info.dtype.clone(),
                    })?;
                let (begin, end) = info.data_offsets;
                let offsets_err = |reason: String| FormatError::SafetensorsOffsets {
                    file: file(),
                    tensor: name.clone(),
                    begin,
                    end,
                    reason,
                };
                if begin > end {
                    return Err(offsets_err("begin after end".into()));
                }
                if end > data_len {
                    return Err(offsets_err(format!(
                        "end past the data section ({data_len} bytes)"
                    )));
                }
                let expected = checked_nbytes(dtype, &info.shape).ok_or_else(|| {
                    FormatError::ShapeOverflow {
                        file: file(),
                        tensor: name.clone(),
                        shape: info.shape.clone(),
                    }
                })?;
                if expected != end - begin {
                    return Err(FormatError::ByteLength {
                        file: file(),
                        tensor: name,
                        dtype,
                        shape: info.shape,
                        expected,
                        found: end - begin,
                    });
                }
                infos.push((name, dtype, info.shape, begin, end));
            }
        }
    }

    // The ranges must tile the data section: sorted, each starting where the previous ended.
    infos.sort_by_key(|i| (i.3, i.4));
    let mut cursor = 0u64;
    let mut previous: Option<&str> = None;
    for (name, _, _, begin, end) in &infos {
        if *begin != cursor {
            let reason = match (previous, *begin < cursor) {
                (Some(p), true) => format!("overlap tensor `{p}` (which ends at {cursor})"),
                (Some(p), false) => {
                    format!("leave a hole after tensor `{p}` (which ends at {cursor})")
                }
                (None, _) => "leave a hole at the start of the data section".into(),
            };
            return Err(FormatError::SafetensorsOffsets {
                file: file(),
                tensor: name.clone(),
                begin: *begin,
                end: *end,
                reason,
            });
        }
        cursor = *end;
        previous = Some(name);
    }
    if cursor != data_len {
        return Err(FormatError::SafetensorsHeader {
            file: file(),
            reason: format!(
                "the tensors cover {cursor} bytes but the data section has {data_len} \
                 (trailing bytes are not allowed)"
            ),
        });
    }

    let mut tensors = Vec::with_capacity(infos.len());
    for (name, dtype, shape, begin, end) in infos {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let bytes = data[begin as usize..end as usize].to_vec();
        let t = RawTensor::from_parts(dtype, shape, bytes, label, &name)?;
        tensors.push((name, t));
    }
    Ok(Safetensors { tensors, metadata })
}

/// Builds the header (length prefix included) for `tensors` in order.
fn header_bytes(
    tensors: &[(String, RawTensor)],
    metadata: Option<&BTreeMap<String, String>>,
    label: &str,
) -> Result<Vec<u8>> {
    let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""));
    let mut parts = Vec::with_capacity(tensors.len() + 1);
    if let Some(m) = metadata {
        let items: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{}:{}", json(k), json(v)))
            .collect();
        parts.push(format!("\"__metadata__\":{{{}}}", items.join(",")));
    }
    let mut seen = HashSet::new();
    let mut offset = 0u64;
    for (name, t) in tensors {
        if name == "__metadata__" || !seen.insert(name.as_str()) {
            return Err(FormatError::DuplicateTensor {
                file: label.to_string(),
                tensor: name.clone(),
            });
        }
        let end = offset + t.bytes().len() as u64;
        let shape: Vec<String> = shape_u64(t.shape()).iter().map(u64::to_string).collect();
        parts.push(format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json(name),
            t.dtype().name(),
            shape.join(","),
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", parts.join(",")).into_bytes();
    // Pad with spaces so the data section starts 8-byte aligned.
    while (header.len() + 8) % 8 != 0 {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    Ok(out)
}

/// Serialises tensors (any dtype, kept as is) and optional `__metadata__` to safetensors bytes.
pub fn safetensors_to_bytes(
    tensors: &[(String, RawTensor)],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut out = header_bytes(tensors, metadata, "<memory>")?;
    for (_, t) in tensors {
        out.extend_from_slice(t.bytes());
    }
    Ok(out)
}

/// Writes tensors (F32, I64 or any other dtype, kept as is) and optional
/// `__metadata__` to a safetensors file, atomically (see
/// [`finetune_files::atomic_write`]).
/// Names must be unique and not `__metadata__`.
pub fn write_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(String, RawTensor)],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let header = header_bytes(tensors, metadata, &path.display().to_string())?;
    Ok(finetune_files::atomic_write(path, |w| {
        w.write_all(&header)?;
        for (_, t) in tensors {
            w.write_all(t.bytes())?;
        }
        Ok(())
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NamedTensors {
        vec![
            (
                "w".to_string(),
                RawTensor::from_f32(&[2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap(),
            ),
            ("n".to_string(), RawTensor::from_i64(&[], &[3]).unwrap()),
            (
                "empty".to_string(),
                RawTensor::from_f32(&[0, 4], &[]).unwrap(),
            ),
        ]
    }

    /// A file from a hand-written header and a data section.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn round_trip_with_metadata() {
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        meta.insert("quote\"d".to_string(), "ünï\ncode".to_string());
        let bytes = safetensors_to_bytes(&sample(), Some(&meta)).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!((8 + header_len) % 8, 0);
        let st = parse_safetensors(&bytes, "mem").unwrap();
        assert_eq!(st.metadata, Some(meta));
        let mut got = st.tensors;
        let mut want = sample();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want);
    }

    #[test]
    fn write_rejects_duplicate_and_reserved_names() {
        let t = RawTensor::from_f32(&[1], &[1.0]).unwrap();
        let dup = vec![("a".to_string(), t.clone()), ("a".to_string(), t.clone())];
        assert!(matches!(
            safetensors_to_bytes(&dup, None),
            Err(FormatError::DuplicateTensor { .. })
        ));
        let reserved = vec![("__metadata__".to_string(), t)];
        assert!(safetensors_to_bytes(&reserved, None).is_err());
    }

    #[test]
    fn upcasts_half_types() {
        let h: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let b: Vec<u8> = [2.0f32]
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        let mut data = h.clone();
        data.extend_from_slice(&b);
        let st = parse_safetensors(
            &file(
                r#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}"#,
                &data,
            ),
            "mem",
        )
        .unwrap();
        assert_eq!(st.tensors[0].1.to_f32().unwrap(), vec![1.5, -0.25]);
        assert_eq!(st.tensors[1].1.to_f32().unwrap(), vec![2.0]);
    }

    #[test]
    fn edge_cases_give_specific_errors() {
        let ok_entry = r#""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;
        let data8 = [0u8; 8];
        type Check = fn(&FormatError) -> bool;
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            ("too short", vec![1, 2, 3], |e| {
                matches!(e, FormatError::SafetensorsTooShort { .. })
            }),
            (
                "header too large",
                {
                    let mut v = (MAX_HEADER_BYTES + 1).to_le_bytes().to_vec();
                    v.extend_from_slice(b"{}");
                    v
                },
                |e| matches!(e, FormatError::SafetensorsHeaderTooLarge { .. }),
            ),
            (
                "header beyond file",
                {
                    let mut v = 1000u64.to_le_bytes().to_vec();
                    v.extend_from_slice(b"{}");
                    v
                },
                |e| {
                    matches!(
                        e,
                        FormatError::SafetensorsHeaderBeyondFile { declared: 1000, .. }
                    )
                },
            ),
            ("u64::MAX header", u64::MAX.to_le_bytes().to_vec(), |e| {
                matches!(e, FormatError::SafetensorsHeaderTooLarge { .. })
            }),
            ("not json", file("{nope", &[]), |e| {
                matches!(e, FormatError::SafetensorsHeader { .. })
            }),
            ("not an object", file("[1,2]", &[]), |e| {
                matches!(e, FormatError::SafetensorsHeader { .. })
            }),
            ("leading space", file(" {}", &[]), |e| {
                matches!(e, FormatError::SafetensorsHeader { .. })
            }),
            (
                "duplicate name",
                file(&format!("{{{ok_entry},{ok_entry}}}"), &data8),
                |e| e.to_string().contains("duplicate entry `a`"),
            ),
            (
                "unknown field",
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}"#,
                    &data8,
                ),
                |e| matches!(e, FormatError::SafetensorsHeader { .. }),
            ),
            (
                "negative shape",
                file(
                    r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
                    &data8,
                ),
                |e| matches!(e, FormatError::SafetensorsHeader { .. }),
            ),
            (
                "metadata not strings",
                file(r#"{"__metadata__":{"k":1}}"#, &[]),
                |e| matches!(e, FormatError::SafetensorsHeader { .. }),
            ),
            (
                "unsupported dtype",
                file(
                    r#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#,
                    &data8,
                ),
                |e| matches!(e, FormatError::UnsupportedDType { dtype, .. } if dtype == "C64"),
            ),
            (
                "dtype size mismatch",
                file(
                    r#"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#,
                    &data8,
                ),
                |e| {
                    matches!(
                        e,
                        FormatError::ByteLength {
                            expected: 16,
                            found: 8,
                            ..
                        }
                    )
                },
            ),
            (
                "outside data section",
                file(
                    r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                    &data8,
                ),
                |e| matches!(e, FormatError::SafetensorsOffsets { .. }),
            ),
            (
                "begin after end",
                file(
                    r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#,
                    &data8,
                ),
                |e| matches!(e, FormatError::SafetensorsOffsets { .. }),
            ),
            (
                "overlap",
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    &data8,
                ),
                |e| e.to_string().contains("overlap tensor `a`"),
            ),
            (
                "hole",
                file(
                    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    &data8,
                ),
                |e| e.to_string().contains("hole"),
            ),
            (
                "trailing bytes",
                file(
                    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                    &data8,
                ),
                |e| e.to_string().contains("trailing"),
            ),
            (
                "huge shape",
                file(
                    r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                    &data8,
                ),
                |e| matches!(e, FormatError::ShapeOverflow { .. }),
            ),
            (
                "truncated data",
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                    &data8[..5],
                ),
                |e| matches!(e, FormatError::SafetensorsOffsets { .. }),
            ),
        ];
        for (what, bytes, check) in cases {
            let e = parse_safetensors(&bytes, "case.safetensors").unwrap_err();
            assert!(check(&e), "{what}: unexpected error {e:?}");
            assert!(e.to_string().contains("case.safetensors"), "{what}: {e}");
        }
    }

    #[test]
    fn zero_size_tensors_may_share_an_offset() {
        let st = parse_safetensors(
            &file(
                r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
                &[9],
            ),
            "mem",
        )
        .unwrap();
        assert_eq!(st.tensors.len(), 3);
        let empty = parse_safetensors(&file("{}", &[]), "mem").unwrap();
        assert!(empty.tensors.is_empty() && empty.metadata.is_none());
    }
}
