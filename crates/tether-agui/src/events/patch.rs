//! JSON Patch (RFC 6902), carried by `STATE_DELTA` and `ACTIVITY_DELTA`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON Pointer (RFC 6901): the empty string (the whole document) or a
/// sequence of `/`-prefixed reference tokens in which `~` appears only as the
/// escapes `~0` and `~1`.
///
/// ```
/// use tether_agui::JsonPointer;
///
/// assert!(JsonPointer::new("/todos/0/done").is_ok());
/// assert!(JsonPointer::new("").is_ok());
/// assert!(JsonPointer::new("todos").is_err());
/// assert!(JsonPointer::new("/a~2b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JsonPointer(String);

impl JsonPointer {
    /// Checks `pointer` against the RFC 6901 grammar.
    pub fn new(pointer: impl Into<String>) -> Result<Self, InvalidPointer> {
        let pointer = pointer.into();
        if is_json_pointer(&pointer) {
            Ok(Self(pointer))
        } else {
            Err(InvalidPointer(pointer))
        }
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_json_pointer(pointer: &str) -> bool {
    if pointer.is_empty() {
        return true;
    }
    if !pointer.starts_with('/') {
        return false;
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

impl TryFrom<String> for JsonPointer {
    type Error = InvalidPointer;

    fn try_from(pointer: String) -> Result<Self, Self::Error> {
        Self::new(pointer)
    }
}

impl From<JsonPointer> for String {
    fn from(pointer: JsonPointer) -> Self {
        pointer.0
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not a JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a JSON Pointer: use \"\" for the whole document or `/`-separated tokens, escaping `~` as `~0` and `/` as `~1`"
)]
pub struct InvalidPointer(pub String);

/// One RFC 6902 operation, discriminated by `op`.
///
/// Unlike the protocol's own objects, operations are open: RFC 6902 says
/// members an operation does not define are ignored, so they are accepted and
/// not kept. A `value` may be any JSON value, `null` included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum JsonPatchOperation {
    /// Inserts `value` at `path` (RFC 6902 section 4.1).
    Add {
        /// Where to insert.
        path: JsonPointer,
        /// What to insert.
        value: Value,
    },
    /// Removes the value at `path` (section 4.2).
    Remove {
        /// What to remove.
        path: JsonPointer,
    },
    /// Replaces the value at `path` (section 4.3).
    Replace {
        /// What to replace.
        path: JsonPointer,
        /// The new value.
        value: Value,
    },
    /// Moves the value at `from` to `path` (section 4.4).
    Move {
        /// Where the value is now.
        from: JsonPointer,
        /// Where it goes.
        path: JsonPointer,
    },
    /// Copies the value at `from` to `path` (section 4.5).
    Copy {
        /// Where the value is.
        from: JsonPointer,
        /// Where the copy goes.
        path: JsonPointer,
    },
    /// Asserts that the value at `path` equals `value` (section 4.6).
    Test {
        /// What to compare.
        path: JsonPointer,
        /// The expected value.
        value: Value,
    },
}

/// A JSON Patch document: operations applied in order. Empty is a valid no-op.
pub type JsonPatch = Vec<JsonPatchOperation>;

/// Why a JSON Patch did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation {index} ({op} {path}) does not apply: {reason}")]
pub struct PatchError {
    /// The position of the failing operation in the patch.
    pub index: usize,
    /// Its `op`.
    pub op: &'static str,
    /// Its `path`.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Applies `patch` to `doc` as RFC 6902 says, all or nothing: when an
/// operation fails (a path that does not resolve, an array index out of range,
/// a `test` that does not match), every operation before it is undone and
/// `doc` is left as it was. This is what the official client does with a
/// `STATE_DELTA` (`fast-json-patch`'s `applyPatch` with validation on).
///
/// ```
/// use serde_json::json;
/// use tether_agui::{JsonPatch, apply_patch};
///
/// let mut doc = json!({"todos": ["a"]});
/// let patch: JsonPatch = serde_json::from_value(json!([
///     {"op": "add", "path": "/todos/-", "value": "b"},
///     {"op": "replace", "path": "/done", "value": true},
/// ]))?;
/// // `/done` does not exist, so nothing changes.
/// assert!(apply_patch(&mut doc, &patch).is_err());
/// assert_eq!(doc, json!({"todos": ["a"]}));
///
/// let patch: JsonPatch = serde_json::from_value(json!([
///     {"op": "add", "path": "/todos/-", "value": "b"},
///     {"op": "add", "path": "/done", "value": false},
/// ]))?;
/// apply_patch(&mut doc, &patch)?;
/// assert_eq!(doc, json!({"todos": ["a", "b"], "done": false}));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn apply_patch(doc: &mut Value, patch: &[JsonPatchOperation]) -> Result<(), PatchError> {
    let mut undo = Vec::new();
    for (index, op) in patch.iter().enumerate() {
        if let Err(reason) = apply_one(doc, op, &mut undo) {
            while let Some(step) = undo.pop() {
                revert(doc, step);
            }
            let (name, path) = op_name_path(op);
            return Err(PatchError {
                index,
                op: name,
                path: path.to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

fn op_name_path(op: &JsonPatchOperation) -> (&'static str, &str) {
    match op {
        JsonPatchOperation::Add { path, .. } => ("add", path.as_str()),
        JsonPatchOperation::Remove { path } => ("remove", path.as_str()),
        JsonPatchOperation::Replace { path, .. } => ("replace", path.as_str()),
        JsonPatchOperation::Move { path, .. } => ("move", path.as_str()),
        JsonPatchOperation::Copy { path, .. } => ("copy", path.as_str()),
        JsonPatchOperation::Test { path, .. } => ("test", path.as_str()),
    }
}

/// One primitive change, recorded so it can be reverted.
enum Undo {
    /// The whole document was replaced; this was the old one.
    Root(Value),
    /// An object member was set; `old` is what it held (`None`: it was absent).
    Member {
        parent: Vec<String>,
        key: String,
        old: Option<Value>,
    },
    /// An array element was inserted at `index`.
    Inserted { parent: Vec<String>, index: usize },
    /// An array element was removed from `index`.
    Removed {
        parent: Vec<String>,
        index: usize,
        old: Value,
    },
    /// An array element was replaced.
    Replaced {
        parent: Vec<String>,
        index: usize,
        old: Value,
    },
}

fn tokens(pointer: &JsonPointer) -> Vec<String> {
    let s = pointer.as_str();
    if s.is_empty() {
        return Vec::new();
    }
    s[1..]
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let valid = token == "0" || (!token.is_empty() && !token.starts_with('0'));
    let index: usize = match token.parse() {
        Ok(i) if valid => i,
        _ => return Err(format!("`{token}` is not an array index")),
    };
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if index > max || (!allow_end && len == 0) {
        return Err(format!("index {index} is out of bounds (length {len})"));
    }
    Ok(index)
}

fn resolve<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(map) => map.get(t)?,
            Value::Array(items) => items.get(array_index(t, items.len(), false).ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn resolve_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(map) => map.get_mut(t).ok_or_else(|| format!("no member `{t}`"))?,
            Value::Array(items) => {
                let i = array_index(t, items.len(), false)?;
                &mut items[i]
            }
            _ => return Err(format!("`{t}` is below a value that is not a container")),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &[String], value: Value, undo: &mut Vec<Undo>) -> Result<(), String> {
    let Some((key, parent)) = path.split_last() else {
        undo.push(Undo::Root(std::mem::replace(doc, value)));
        return Ok(());
    };
    match resolve_mut(doc, parent)? {
        Value::Object(map) => {
            let old = map.insert(key.clone(), value);
            undo.push(Undo::Member {
                parent: parent.to_vec(),
                key: key.clone(),
                old,
            });
            Ok(())
        }
        Value::Array(items) => {
            let index = array_index(key, items.len(), true)?;
            items.insert(index, value);
            undo.push(Undo::Inserted {
                parent: parent.to_vec(),
                index,
            });
            Ok(())
        }
        _ => Err("the parent is not an object or an array".into()),
    }
}

fn remove(doc: &mut Value, path: &[String], undo: &mut Vec<Undo>) -> Result<Value, String> {
    let Some((key, parent)) = path.split_last() else {
        return Err("the whole document cannot be removed".into());
    };
    match resolve_mut(doc, parent)? {
        Value::Object(map) => {
            let old = map
                .remove(key)
                .ok_or_else(|| format!("no member `{key}`"))?;
            undo.push(Undo::Member {
                parent: parent.to_vec(),
                key: key.clone(),
                old: Some(old.clone()),
            });
            Ok(old)
        }
        Value::Array(items) => {
            let index = array_index(key, items.len(), false)?;
            let old = items.remove(index);
            undo.push(Undo::Removed {
                parent: parent.to_vec(),
                index,
                old: old.clone(),
            });
            Ok(old)
        }
        _ => Err("the parent is not an object or an array".into()),
    }
}

fn replace(
    doc: &mut Value,
    path: &[String],
    value: Value,
    undo: &mut Vec<Undo>,
) -> Result<(), String> {
    let Some((key, parent)) = path.split_last() else {
        undo.push(Undo::Root(std::mem::replace(doc, value)));
        return Ok(());
    };
    match resolve_mut(doc, parent)? {
        Value::Object(map) => {
            let slot = map
                .get_mut(key)
                .ok_or_else(|| format!("no member `{key}`"))?;
            let old = std::mem::replace(slot, value);
            undo.push(Undo::Member {
                parent: parent.to_vec(),
                key: key.clone(),
                old: Some(old),
            });
            Ok(())
        }
        Value::Array(items) => {
            let index = array_index(key, items.len(), false)?;
            let old = std::mem::replace(&mut items[index], value);
            undo.push(Undo::Replaced {
                parent: parent.to_vec(),
                index,
                old,
            });
            Ok(())
        }
        _ => Err("the parent is not an object or an array".into()),
    }
}

fn apply_one(doc: &mut Value, op: &JsonPatchOperation, undo: &mut Vec<Undo>) -> Result<(), String> {
    match op {
        JsonPatchOperation::Add { path, value } => add(doc, &tokens(path), value.clone(), undo),
        JsonPatchOperation::Remove { path } => remove(doc, &tokens(path), undo).map(drop),
        JsonPatchOperation::Replace { path, value } => {
            replace(doc, &tokens(path), value.clone(), undo)
        }
        JsonPatchOperation::Move { from, path } => {
            let (from, to) = (tokens(from), tokens(path));
            if from == to {
                return resolve(doc, &from)
                    .map(drop)
                    .ok_or_else(|| "`from` does not resolve".into());
            }
            if to.len() > from.len() && to[..from.len()] == from[..] {
                return Err("a value cannot be moved into one of its own children".into());
            }
            let value = remove(doc, &from, undo)?;
            add(doc, &to, value, undo)
        }
        JsonPatchOperation::Copy { from, path } => {
            let value = resolve(doc, &tokens(from))
                .cloned()
                .ok_or_else(|| "`from` does not resolve".to_owned())?;
            add(doc, &tokens(path), value, undo)
        }
        JsonPatchOperation::Test { path, value } => match resolve(doc, &tokens(path)) {
            Some(found) if found == value => Ok(()),
            Some(_) => Err("the value differs".into()),
            None => Err("the path does not resolve".into()),
        },
    }
}

fn revert(doc: &mut Value, step: Undo) {
    // Every step reverts a change that just succeeded, so its parent resolves.
    match step {
        Undo::Root(old) => *doc = old,
        Undo::Member { parent, key, old } => {
            if let Ok(Value::Object(map)) = resolve_mut(doc, &parent) {
                match old {
                    Some(old) => {
                        map.insert(key, old);
                    }
                    None => {
                        map.remove(&key);
                    }
                }
            }
        }
        Undo::Inserted { parent, index } => {
            if let Ok(Value::Array(items)) = resolve_mut(doc, &parent) {
                items.remove(index);
            }
        }
        Undo::Removed { parent, index, old } => {
            if let Ok(Value::Array(items)) = resolve_mut(doc, &parent) {
                items.insert(index, old);
            }
        }
        Undo::Replaced { parent, index, old } => {
            if let Ok(Value::Array(items)) = resolve_mut(doc, &parent) {
                items[index] = old;
            }
        }
    }
}
