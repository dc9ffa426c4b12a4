//! Events built with the Rust types, one or more of every 1.0 type, each
//! equal to a line of `tests/data/events.jsonl`.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tether_agui::*;

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

const T: i64 = 1_767_225_600_000;

fn object(value: Value) -> Metadata {
    match value {
        Value::Object(members) => members,
        other => panic!("not an object: {other}"),
    }
}

fn pointer(path: &str) -> JsonPointer {
    JsonPointer::new(path).expect("a valid pointer")
}

pub fn built_events() -> Vec<Event> {
    vec![
        RunStarted {
            thread_id: "thread-1".into(),
            run_id: "run-1".into(),
            ..Default::default()
        }
        .into(),
        RunStarted {
            thread_id: "thread-1".into(),
            run_id: "run-2".into(),
            protocol_version: Some(PROTOCOL_VERSION.into()),
            parent_run_id: Some("run-1".into()),
            timestamp: Some(T),
            input: Some(Box::new(run_agent_input())),
            ..Default::default()
        }
        .into(),
        TextMessageStart {
            message_id: "msg-2".into(),
            role: Some(TextMessageRole::User),
            name: Some("ana".into()),
            subagent_run_id: Some("sub-1".into()),
            timestamp: Some(T),
            raw_event: Some(json!({"provider": "x", "id": 7})),
            metadata: Some(object(json!({"ag-ui": {"source": "test"}, "k": null}))),
        }
        .into(),
        TextMessageContent {
            message_id: "msg-1".into(),
            delta: String::new(),
            timestamp: Some(T + 1),
            metadata: Some(object(json!({"tokens": 1}))),
            ..Default::default()
        }
        .into(),
        TextMessageEnd {
            message_id: "msg-1".into(),
            ..Default::default()
        }
        .into(),
        TextMessageChunk {
            message_id: Some("msg-3".into()),
            role: Some(TextMessageRole::Assistant),
            delta: Some("Hi".into()),
            name: Some("bot".into()),
            ..Default::default()
        }
        .into(),
        TextMessageChunk::default().into(),
        ToolCallStart {
            tool_call_id: "call-1".into(),
            tool_call_name: "search_flights".into(),
            parent_message_id: Some("msg-1".into()),
            ..Default::default()
        }
        .into(),
        ToolCallArgs {
            tool_call_id: "call-1".into(),
            delta: "{\"to\":".into(),
            ..Default::default()
        }
        .into(),
        ToolCallEnd {
            tool_call_id: "call-1".into(),
            ..Default::default()
        }
        .into(),
        ToolCallChunk {
            tool_call_id: Some("call-3".into()),
            tool_call_name: Some("lookup".into()),
            parent_message_id: Some("msg-1".into()),
            delta: Some("{}".into()),
            ..Default::default()
        }
        .into(),
        ToolCallResult {
            message_id: "msg-tool-2".into(),
            tool_call_id: "call-2".into(),
            role: Some(ToolRole::Tool),
            content: Content::Parts(vec![
                ContentPart::Text(TextPart {
                    text: "Here is the itinerary.".into(),
                    ..Default::default()
                }),
                ContentPart::Text(TextPart {
                    id: Some("part-1".into()),
                    text: "and a note".into(),
                    metadata: Some(json!("free-form")),
                }),
                ContentPart::Image(MediaPart {
                    id: None,
                    source: PartSource::Url(UrlSource {
                        value: "https://example.invalid/map.png".into(),
                        mime_type: Some("image/png".into()),
                    }),
                    metadata: None,
                }),
                ContentPart::Audio(MediaPart {
                    id: Some("part-2".into()),
                    source: PartSource::Data(DataSource {
                        value: "UklGRg==".into(),
                        mime_type: "audio/wav".into(),
                    }),
                    metadata: Some(json!({"seconds": 1})),
                }),
                ContentPart::Video(MediaPart {
                    id: None,
                    source: PartSource::File(FileSource {
                        value: "file-abc".into(),
                        provider: Some("openai".into()),
                        mime_type: Some("video/mp4".into()),
                    }),
                    metadata: None,
                }),
                ContentPart::Document(MediaPart {
                    id: None,
                    source: PartSource::File(FileSource {
                        value: "gs://bucket/doc.pdf".into(),
                        ..Default::default()
                    }),
                    metadata: None,
                }),
            ]),
            subagent_run_id: None,
            timestamp: None,
            raw_event: None,
            metadata: None,
        }
        .into(),
        StateSnapshot {
            snapshot: json!({"todos": [{"title": "book flight", "done": false}], "count": 1}),
            ..Default::default()
        }
        .into(),
        StateSnapshot::default().into(),
        StateDelta {
            delta: vec![
                JsonPatchOperation::Add {
                    path: pointer("/todos/-"),
                    value: json!({"title": "pack", "done": false}),
                },
                JsonPatchOperation::Remove {
                    path: pointer("/todos/0"),
                },
                JsonPatchOperation::Replace {
                    path: pointer("/count"),
                    value: json!(2),
                },
                JsonPatchOperation::Move {
                    from: pointer("/a"),
                    path: pointer("/b"),
                },
                JsonPatchOperation::Copy {
                    from: pointer("/b"),
                    path: pointer("/c~1d"),
                },
                JsonPatchOperation::Test {
                    path: pointer(""),
                    value: Value::Null,
                },
            ],
            ..Default::default()
        }
        .into(),
        MessagesSnapshot::default().into(),
        MessagesSnapshot {
            timestamp: Some(T),
            messages: snapshot_messages(),
            ..Default::default()
        }
        .into(),
        ActivitySnapshot {
            message_id: "act-1".into(),
            activity_type: "PLAN".into(),
            content: Metadata::new(),
            replace: Some(false),
            subagent_run_id: Some("sub-1".into()),
            ..Default::default()
        }
        .into(),
        ActivityDelta {
            message_id: "act-1".into(),
            activity_type: "PLAN".into(),
            patch: vec![JsonPatchOperation::Replace {
                path: pointer("/steps/0/status"),
                value: json!("done"),
            }],
            ..Default::default()
        }
        .into(),
        Raw {
            event: json!({"object": "chat.completion.chunk", "choices": []}),
            source: Some("openai".into()),
            ..Default::default()
        }
        .into(),
        Custom {
            name: "tether.resync".into(),
            value: json!({"reason": "evicted", "lastEventId": "7f3a9c-3", "resumeFrom": "7f3a9c-42"}),
            ..Default::default()
        }
        .into(),
        Custom {
            name: "app.count".into(),
            value: json!(3),
            subagent_run_id: Some("sub-1".into()),
            timestamp: Some(T),
            raw_event: Some(json!("raw text")),
            metadata: Some(Metadata::new()),
        }
        .into(),
        RunFinished {
            thread_id: "thread-1".into(),
            run_id: "run-1".into(),
            ..Default::default()
        }
        .into(),
        RunFinished {
            thread_id: "thread-1".into(),
            run_id: "run-1".into(),
            result: Some(json!({"booked": true})),
            outcome: Some(RunFinishedOutcome::Success {
                pending_tool_call_ids: None,
            }),
            ..Default::default()
        }
        .into(),
        RunFinished {
            thread_id: "thread-1".into(),
            run_id: "run-1".into(),
            outcome: Some(RunFinishedOutcome::Interrupt {
                interrupts: vec![
                    Interrupt {
                        id: "approval-1".into(),
                        reason: "approval".into(),
                        message: Some("Book flight TP1234 for 120 EUR?".into()),
                        tool_call_id: Some("call-2".into()),
                        response_schema: Some(object(json!({
                            "type": "object",
                            "properties": {"approved": {"type": "boolean"}}
                        }))),
                        expires_at: Some("2030-01-01T00:00:00Z".into()),
                        metadata: Some(object(json!({"tether": {"title": "Book flight"}}))),
                        subagent_run_id: None,
                    },
                    Interrupt {
                        id: "input-1".into(),
                        reason: "missing_value".into(),
                        subagent_run_id: Some("sub-1".into()),
                        ..Default::default()
                    },
                ],
            }),
            ..Default::default()
        }
        .into(),
        RunFinished {
            thread_id: "thread-1".into(),
            run_id: "run-1".into(),
            outcome: Some(RunFinishedOutcome::Cancelled),
            timestamp: Some(T),
            usage: Some(vec![
                TokenUsage {
                    provider: Some("openai".into()),
                    model: Some("gpt-4.1".into()),
                    input_tokens: Some(120),
                    output_tokens: Some(30),
                    total_tokens: Some(150),
                    reasoning_tokens: Some(10),
                    cached_input_tokens: Some(100),
                    cache_write_input_tokens: Some(0),
                },
                TokenUsage::default(),
            ]),
            ..Default::default()
        }
        .into(),
        RunError {
            message: "boom".into(),
            code: Some("provider_timeout".into()),
            usage: Some(vec![TokenUsage {
                model: Some("m".into()),
                input_tokens: Some(1),
                ..Default::default()
            }]),
            timestamp: Some(0),
            ..Default::default()
        }
        .into(),
        StepStarted {
            step_name: "search".into(),
            ..Default::default()
        }
        .into(),
        StepFinished {
            step_name: "search".into(),
            subagent_run_id: Some("sub-1".into()),
            ..Default::default()
        }
        .into(),
        ReasoningStart {
            message_id: "reason-1".into(),
            ..Default::default()
        }
        .into(),
        ReasoningMessageStart {
            message_id: "reason-1".into(),
            role: ReasoningRole::Reasoning,
            ..Default::default()
        }
        .into(),
        ReasoningMessageContent {
            message_id: "reason-1".into(),
            delta: "Comparing fares.".into(),
            ..Default::default()
        }
        .into(),
        ReasoningMessageEnd {
            message_id: "reason-1".into(),
            ..Default::default()
        }
        .into(),
        ReasoningMessageChunk {
            message_id: Some("reason-2".into()),
            delta: Some("Hmm.".into()),
            ..Default::default()
        }
        .into(),
        ReasoningEnd {
            message_id: "reason-1".into(),
            timestamp: Some(T),
            ..Default::default()
        }
        .into(),
        ReasoningEncryptedValue {
            subtype: EncryptedValueSubtype::ToolCall,
            entity_id: "call-1".into(),
            encrypted_value: "c2ln".into(),
            ..Default::default()
        }
        .into(),
        SubagentStarted {
            subagent_run_id: "sub-2".into(),
            name: "booker".into(),
            description: Some("Books flights.".into()),
            parent_subagent_run_id: Some("sub-1".into()),
            parent_tool_call_id: Some("call-2".into()),
            parent_message_id: Some("msg-1".into()),
            ..Default::default()
        }
        .into(),
        SubagentFinished {
            subagent_run_id: "sub-3".into(),
            outcome: Some(SubagentFinishedOutcome::Suspended {
                interrupt_ids: Some(vec!["approval-1".into()]),
            }),
            ..Default::default()
        }
        .into(),
        SubagentFinished {
            subagent_run_id: "sub-2".into(),
            result: Some(json!({"ok": true})),
            outcome: Some(SubagentFinishedOutcome::Success),
            ..Default::default()
        }
        .into(),
        SubagentError {
            subagent_run_id: "sub-5".into(),
            message: "Search API unavailable.".into(),
            code: Some("unavailable".into()),
            ..Default::default()
        }
        .into(),
    ]
}

fn run_agent_input() -> RunAgentInput {
    RunAgentInput {
        thread_id: "thread-1".into(),
        run_id: "run-2".into(),
        protocol_version: Some("1.0".into()),
        parent_run_id: Some("run-1".into()),
        state: Some(json!({"todos": [{"title": "book flight", "done": false}]})),
        messages: vec![
            Message::Developer(DeveloperMessage {
                id: "msg-dev".into(),
                content: "Be brief.".into(),
                ..Default::default()
            }),
            Message::System(SystemMessage {
                id: "msg-sys".into(),
                content: "You plan trips.".into(),
                name: Some("planner".into()),
                ..Default::default()
            }),
            Message::User(UserMessage {
                id: "msg-user".into(),
                content: "Book me a flight to Lisbon.".into(),
                subagent_run_id: None,
                name: None,
                encrypted_value: None,
                metadata: None,
            }),
            Message::Assistant(AssistantMessage {
                id: "msg-asst".into(),
                tool_calls: Some(vec![ToolCall {
                    id: "call-1".into(),
                    kind: ToolCallKind::Function,
                    function: FunctionCall {
                        name: "search_flights".into(),
                        arguments: "{\"to\":\"LIS\"}".into(),
                    },
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            Message::Tool(ToolMessage {
                id: "msg-tool".into(),
                tool_call_id: "call-1".into(),
                content: "3 flights found".into(),
                subagent_run_id: None,
                error: None,
                encrypted_value: None,
                metadata: None,
            }),
        ],
        tools: Some(vec![Tool {
            name: "search_flights".into(),
            description: "Searches flights.".into(),
            parameters: Some(json!({
                "type": "object",
                "properties": {"to": {"type": "string"}}
            })),
            metadata: None,
        }]),
        context: Some(vec![Context {
            description: "user timezone".into(),
            value: "Europe/Lisbon".into(),
        }]),
        forwarded_props: Some(json!({"locale": "pt-PT"})),
        resume: Some(vec![
            ResumeEntry {
                interrupt_id: "approval-1".into(),
                status: ResumeStatus::Resolved,
                payload: Some(json!({"approved": true})),
                metadata: None,
            },
            ResumeEntry {
                interrupt_id: "approval-2".into(),
                status: ResumeStatus::Cancelled,
                payload: None,
                metadata: None,
            },
        ]),
    }
}

fn snapshot_messages() -> Vec<Message> {
    vec![
        Message::Developer(DeveloperMessage {
            id: "m-dev".into(),
            content: "Be brief.".into(),
            name: Some("ops".into()),
            encrypted_value: Some("enc".into()),
            metadata: Some(object(json!({"a": 1}))),
            subagent_run_id: None,
        }),
        Message::System(SystemMessage {
            id: "m-sys".into(),
            content: "You plan trips.".into(),
            ..Default::default()
        }),
        Message::User(UserMessage {
            id: "m-user-1".into(),
            content: "Hi".into(),
            subagent_run_id: None,
            name: None,
            encrypted_value: None,
            metadata: None,
        }),
        Message::User(UserMessage {
            id: "m-user-2".into(),
            subagent_run_id: Some("sub-1".into()),
            content: Content::Parts(vec![
                ContentPart::Text(TextPart {
                    text: "What is this?".into(),
                    ..Default::default()
                }),
                ContentPart::Image(MediaPart {
                    id: None,
                    source: PartSource::Data(DataSource {
                        value: "iVBORw0KGgo=".into(),
                        mime_type: "image/png".into(),
                    }),
                    metadata: None,
                }),
            ]),
            name: None,
            encrypted_value: None,
            metadata: None,
        }),
        Message::Assistant(AssistantMessage {
            id: "m-asst-1".into(),
            content: Some("Let me check.".into()),
            ..Default::default()
        }),
        Message::Assistant(AssistantMessage {
            id: "m-asst-2".into(),
            content: Some(String::new()),
            tool_calls: Some(vec![ToolCall {
                id: "call-9".into(),
                kind: ToolCallKind::Function,
                function: FunctionCall {
                    name: "f".into(),
                    arguments: "{}".into(),
                },
                encrypted_value: Some("sig".into()),
                metadata: Some(object(json!({"x": true}))),
            }]),
            ..Default::default()
        }),
        Message::Tool(ToolMessage {
            id: "m-tool".into(),
            tool_call_id: "call-9".into(),
            content: "failed".into(),
            error: Some("timeout".into()),
            subagent_run_id: None,
            encrypted_value: None,
            metadata: None,
        }),
        Message::Activity(ActivityMessage {
            id: "m-act".into(),
            activity_type: "PLAN".into(),
            content: object(json!({"steps": ["a", "b"]})),
            ..Default::default()
        }),
        Message::Reasoning(ReasoningMessage {
            id: "m-reason".into(),
            content: "Thinking about flights.".into(),
            encrypted_value: Some("opaque".into()),
            ..Default::default()
        }),
    ]
}

/// One event of every type with only its required fields set.
pub fn minimal_events() -> Vec<Event> {
    vec![
        TextMessageStart {
            message_id: "m1".into(),
            ..Default::default()
        }
        .into(),
        TextMessageContent {
            message_id: "m1".into(),
            delta: "Hi".into(),
            ..Default::default()
        }
        .into(),
        TextMessageEnd {
            message_id: "m1".into(),
            ..Default::default()
        }
        .into(),
        TextMessageChunk::default().into(),
        ToolCallStart {
            tool_call_id: "c1".into(),
            tool_call_name: "f".into(),
            ..Default::default()
        }
        .into(),
        ToolCallArgs {
            tool_call_id: "c1".into(),
            delta: "{}".into(),
            ..Default::default()
        }
        .into(),
        ToolCallEnd {
            tool_call_id: "c1".into(),
            ..Default::default()
        }
        .into(),
        ToolCallChunk::default().into(),
        ToolCallResult {
            message_id: "m2".into(),
            tool_call_id: "c1".into(),
            content: "ok".into(),
            role: None,
            subagent_run_id: None,
            timestamp: None,
            raw_event: None,
            metadata: None,
        }
        .into(),
        StateSnapshot {
            snapshot: json!({}),
            ..Default::default()
        }
        .into(),
        StateDelta::default().into(),
        MessagesSnapshot::default().into(),
        ActivitySnapshot {
            message_id: "a1".into(),
            activity_type: "PLAN".into(),
            ..Default::default()
        }
        .into(),
        ActivityDelta {
            message_id: "a1".into(),
            activity_type: "PLAN".into(),
            ..Default::default()
        }
        .into(),
        Raw {
            event: json!({}),
            ..Default::default()
        }
        .into(),
        Custom {
            name: "n".into(),
            value: json!(0),
            ..Default::default()
        }
        .into(),
        RunStarted {
            thread_id: "t1".into(),
            run_id: "r1".into(),
            ..Default::default()
        }
        .into(),
        RunFinished {
            thread_id: "t1".into(),
            run_id: "r1".into(),
            ..Default::default()
        }
        .into(),
        RunError {
            message: "failed".into(),
            ..Default::default()
        }
        .into(),
        StepStarted {
            step_name: "s".into(),
            ..Default::default()
        }
        .into(),
        StepFinished {
            step_name: "s".into(),
            ..Default::default()
        }
        .into(),
        ReasoningStart {
            message_id: "r1".into(),
            ..Default::default()
        }
        .into(),
        ReasoningMessageStart {
            message_id: "r1".into(),
            ..Default::default()
        }
        .into(),
        ReasoningMessageContent {
            message_id: "r1".into(),
            delta: "d".into(),
            ..Default::default()
        }
        .into(),
        ReasoningMessageEnd {
            message_id: "r1".into(),
            ..Default::default()
        }
        .into(),
        ReasoningMessageChunk::default().into(),
        ReasoningEnd {
            message_id: "r1".into(),
            ..Default::default()
        }
        .into(),
        ReasoningEncryptedValue {
            entity_id: "r1".into(),
            encrypted_value: "e".into(),
            ..Default::default()
        }
        .into(),
        SubagentStarted {
            subagent_run_id: "s1".into(),
            name: "n".into(),
            ..Default::default()
        }
        .into(),
        SubagentFinished {
            subagent_run_id: "s1".into(),
            ..Default::default()
        }
        .into(),
        SubagentError {
            subagent_run_id: "s1".into(),
            message: "failed".into(),
            ..Default::default()
        }
        .into(),
    ]
}

/// The path of the first `null` outside open JSON: a protocol field written
/// as `null` instead of being left out. Values under `value`, `snapshot` and
/// `event` (required, and free to be `null`) and under the optional open
/// fields are not searched, but an optional open field that is itself `null`
/// is reported.
pub fn protocol_null(value: &Value) -> Option<String> {
    const REQUIRED_OPEN: &[&str] = &["value", "snapshot", "event"];
    const OPTIONAL_OPEN: &[&str] = &[
        "metadata",
        "rawEvent",
        "result",
        "state",
        "forwardedProps",
        "payload",
        "parameters",
        "responseSchema",
    ];
    fn walk(value: &Value, path: &mut String) -> Option<String> {
        match value {
            Value::Null => Some(path.clone()),
            Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
                let len = path.len();
                path.push_str(&format!("/{index}"));
                let found = walk(item, path);
                path.truncate(len);
                found
            }),
            Value::Object(members) => members.iter().find_map(|(key, member)| {
                let len = path.len();
                path.push('/');
                path.push_str(key);
                let found = if REQUIRED_OPEN.contains(&key.as_str()) {
                    None
                } else if OPTIONAL_OPEN.contains(&key.as_str()) {
                    member.is_null().then(|| path.clone())
                } else {
                    walk(member, path)
                };
                path.truncate(len);
                found
            }),
            _ => None,
        }
    }
    walk(value, &mut String::new())
}

pub fn contains_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(members) => members.values().any(contains_null),
        _ => false,
    }
}
