//! Field deserializers for the rules serde's defaults do not express.
//!
//! The 1.0 schemas reject `null` in an optional position (an optional field is
//! absent or has a value), bound integers to JavaScript's safe range, and
//! require some arrays to be non-empty. Each helper here enforces one of those
//! rules with an error that says what to send instead.

use serde::de::{Deserialize, Deserializer, Error};

/// The largest integer a JavaScript number holds exactly (`2^53 - 1`), the
/// bound of every integer in the 1.0 schemas.
pub(crate) const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// An optional field that may be absent but never `null`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(D::Error::custom(
            "null is not allowed for an optional field; omit the field instead",
        )),
    }
}

/// An optional integer millisecond timestamp within the safe integer range.
pub(crate) fn timestamp<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    let value: Option<i64> = present(deserializer)?;
    if let Some(millis) = value
        && !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&millis)
    {
        return Err(D::Error::custom(
            "timestamp must be an integer number of milliseconds within ±(2^53 - 1)",
        ));
    }
    Ok(value)
}

/// An optional non-negative count within the safe integer range.
pub(crate) fn count<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: Deserializer<'de>,
{
    let value: Option<u64> = present(deserializer)?;
    if let Some(count) = value
        && count > MAX_SAFE_INTEGER as u64
    {
        return Err(D::Error::custom(
            "a token count must be an integer between 0 and 2^53 - 1",
        ));
    }
    Ok(value)
}

/// The interrupts of an interrupt outcome: at least one.
pub(crate) fn interrupt_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items = Vec::<T>::deserialize(deserializer)?;
    if items.is_empty() {
        return Err(D::Error::custom(
            "an interrupt outcome needs at least one interrupt",
        ));
    }
    Ok(items)
}
