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
