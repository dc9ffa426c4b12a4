//! The fields every AG-UI event carries, declared once.
//!
//! Each event struct is declared through [`event!`] or [`attributed_event!`],
//! which write the struct's own fields and then the common ones inline, in the
//! order the wire format has always had: `subagentRunId` (attributed events
//! only), `timestamp`, `rawEvent`, `metadata`. Inline fields rather than a
//! `#[serde(flatten)]` struct keep serde's member order and its handling of
//! unknown members exactly as for a hand-written struct.

/// Declares an event struct that carries `timestamp`, `rawEvent` and
/// `metadata` after its own fields, with the derives and the camelCase
/// renaming every event has. Further attributes (e.g. `#[derive(Default)]`)
/// go before `pub struct`.
macro_rules! event {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $($fields)*
            /// When the event happened, in milliseconds since the Unix epoch.
            #[serde(
                default,
                skip_serializing_if = "Option::is_none",
                deserialize_with = "crate::events::de::timestamp"
            )]
            pub timestamp: Option<i64>,
            /// The provider event this one was made from: any JSON value except `null`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub raw_event: Option<::serde_json::Value>,
            /// Extra information, open by key.
            #[serde(
                default,
                skip_serializing_if = "Option::is_none",
                deserialize_with = "crate::events::de::present"
            )]
            pub metadata: Option<crate::events::Metadata>,
        }
    };
}

/// Declares an event struct that may belong to a subagent invocation: as
/// [`event!`], with `subagentRunId` between its own fields and the common
/// ones.
macro_rules! attributed_event {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        event! {
            $(#[$meta])*
            pub struct $name {
                $($fields)*
                /// The subagent invocation this event belongs to.
                #[serde(
                    default,
                    skip_serializing_if = "Option::is_none",
                    deserialize_with = "crate::events::de::present"
                )]
                pub subagent_run_id: Option<String>,
            }
        }
    };
}
