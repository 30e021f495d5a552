//! Parsing a spec from JSON, with errors that name the layer.

use serde_json::Value;

use super::{LAYER_TYPES, LayerKind, LayerSpec, Loc, parse_err};
use crate::error::Result;

/// Parses one layer object (recursively for `sequential`), naming it in errors.
pub(super) fn parse_layer(v: Value, parent: &Loc, index: usize, file: &str) -> Result<LayerSpec> {
    let provisional = parent.child(&index.to_string(), index);
    let Value::Object(mut obj) = v else {
        return Err(parse_err(
            file,
            &provisional,
            format!("a layer must be a JSON object, found {}", kind_of(&v)),
        ));
    };
    let name = match obj.remove("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(parse_err(
                file,
                &provisional,
                format!("`name` must be a string, found {}", kind_of(&other)),
            ));
        }
    };
    let loc = parent.child(name.as_deref().unwrap_or(&index.to_string()), index);
    let from = match obj.remove("from") {
        None | Some(Value::Null) => None,
        Some(Value::Array(refs)) => Some(
            refs.into_iter()
                .map(|r| match r {
                    Value::String(s) => Ok(s),
                    Value::Number(n) if n.as_u64().is_some() => Ok(n.to_string()),
                    other => Err(parse_err(
                        file,
                        &loc,
                        format!(
                            "`from` lists layer names, indices or \"input\", found {}",
                            kind_of(&other)
                        ),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(Value::String(s)) => Some(vec![s]),
        Some(other) => {
            return Err(parse_err(
                file,
                &loc,
                format!("`from` must be an array, found {}", kind_of(&other)),
            ));
        }
    };
    let type_name = match obj.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(other) => {
            return Err(parse_err(
                file,
                &loc,
                format!("`type` must be a string, found {}", kind_of(other)),
            ));
        }
        None => return Err(parse_err(file, &loc, "missing field `type`")),
    };
    if !LAYER_TYPES.contains(&type_name.as_str()) {
        return Err(parse_err(
            file,
            &loc,
            format!(
                "unknown layer type `{type_name}`; known types: {}",
                LAYER_TYPES.join(", ")
            ),
        ));
    }
    if type_name == "sequential" {
        obj.remove("type");
        let layers = match obj.remove("layers") {
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(parse_err(
                    file,
                    &loc,
                    format!("`layers` must be an array, found {}", kind_of(&other)),
                ));
            }
            None => return Err(parse_err(file, &loc, "missing field `layers`")),
        };
        if let Some(k) = obj.keys().next() {
            return Err(parse_err(
                file,
                &loc,
                format!("unknown field `{k}`, expected `layers`, `name` or `from`"),
            ));
        }
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_layer(v, &loc, i, file))
            .collect::<Result<Vec<_>>>()?;
        return Ok(LayerSpec {
            kind: LayerKind::Sequential { layers },
            name,
            from,
        });
    }
    let kind: LayerKind = serde_json::from_value(Value::Object(obj))
        .map_err(|e| parse_err(file, &loc, format!("{type_name}: {e}")))?;
    Ok(LayerSpec { kind, name, from })
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
