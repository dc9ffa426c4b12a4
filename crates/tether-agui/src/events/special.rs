//! `RAW` and `CUSTOM`: events the protocol passes through.

use serde_json::Value;

use super::de::present;

attributed_event! {
    /// `RAW`: a provider-native event passed through untranslated.
    #[derive(Default)]
    pub struct Raw {
        /// The provider's event: any JSON value, `null` included. Required.
        pub event: Value,
        /// Where it came from.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub source: Option<String>,
    }
}

attributed_event! {
    /// `CUSTOM`: the protocol's extension point for an application's own events.
    ///
    /// ```
    /// use serde_json::json;
    /// use tether_agui::{Custom, Event};
    ///
    /// let event = Event::from(Custom {
    ///     name: "tether.resync".into(),
    ///     value: json!({"reason": "evicted"}),
    ///     ..Default::default()
    /// });
    /// assert_eq!(
    ///     serde_json::to_string(&event)?,
    ///     r#"{"type":"CUSTOM","name":"tether.resync","value":{"reason":"evicted"}}"#,
    /// );
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[derive(Default)]
    pub struct Custom {
        /// The event's name.
        pub name: String,
        /// Its payload: any JSON value, `null` included. Required.
        pub value: Value,
    }
}
