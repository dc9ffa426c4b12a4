//! The completed messages as a `MESSAGES_SNAPSHOT` carries them: what an
//! ended text message, tool call or tool result adds to them, within the
//! limit of their bytes.

use std::sync::Arc;

use super::{Open, RunTracker, json_len};
use crate::events::{
    AssistantMessage, Content, DeveloperMessage, FunctionCall, Message, SystemMessage,
    TextMessageRole, TextMessageStart, ToolCall, ToolCallKind, ToolCallStart, UserMessage,
};
use crate::verify::Owners;

/// Appends streamed text to a message as the client's reducer does: text
/// content is extended, any other content is replaced.
fn append_text(message: &mut Message, text: &str) {
    let extend = |content: &mut String| content.push_str(text);
    match message {
        Message::Developer(m) => extend(&mut m.content),
        Message::System(m) => extend(&mut m.content),
        Message::Assistant(m) => extend(m.content.get_or_insert_with(String::new)),
        Message::User(m) => match &mut m.content {
            Content::Text(t) => extend(t),
            other => *other = Content::Text(text.to_owned()),
        },
        Message::Tool(m) => match &mut m.content {
            Content::Text(t) => extend(t),
            other => *other = Content::Text(text.to_owned()),
        },
        Message::Reasoning(m) => extend(&mut m.content),
        Message::Activity(_) => {}
    }
}

/// Whether a message belongs in the snapshot: reasoning and activity messages
/// are left to the client, which keeps its own when a snapshot carries none.
pub(super) fn kept(message: &Message) -> bool {
    !matches!(message, Message::Reasoning(_) | Message::Activity(_))
}

impl RunTracker {
    /// The completed messages, to change from index `from` on: the owners seeded from the
    /// messages before it are rebuilt at the next run start.
    pub(super) fn messages_from(&mut self, from: usize) -> &mut Vec<Message> {
        if from < self.seeded_upto {
            self.seeded_stale = true;
        }
        Arc::make_mut(&mut self.messages)
    }

    /// The owners the completed messages carry, for the joined view of a run that starts
    /// now. Messages appended since the last run start are added to the last ones; only a
    /// change to an earlier message (a trim, a snapshot, a tool call joining it) builds them
    /// again, so a run start does not cost the whole history.
    pub(super) fn seeded_owners(&mut self) -> Arc<Owners> {
        // The joined view lets go of its copy first, so the owners change in place.
        self.joined.set_seeded(Arc::default());
        // Every change but an append goes through `messages_from`, which marks them stale.
        if self.seeded_stale {
            self.seeded = Arc::default();
            self.seeded_upto = 0;
            self.seeded_stale = false;
        }
        if self.seeded_upto < self.messages.len() {
            Arc::make_mut(&mut self.seeded).seed(&self.messages[self.seeded_upto..]);
            self.seeded_upto = self.messages.len();
        }
        debug_assert!(
            {
                let mut all = Owners::default();
                all.seed(self.messages.iter());
                all == *self.seeded
            },
            "the seeded owners are those of every completed message"
        );
        self.seeded.clone()
    }

    pub(super) fn message_index(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.id() == id)
    }

    /// The index of the assistant message that carries a tool call.
    pub(super) fn tool_call_owner(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| match m {
            Message::Assistant(a) => a.tool_calls.iter().flatten().any(|c| c.id == id),
            _ => false,
        })
    }

    pub(super) fn push_message(&mut self, message: Message) {
        let size = json_len(&message);
        self.message_bytes += size;
        self.message_sizes.push(size);
        let end = self.messages.len();
        self.messages_from(end).push(message);
    }

    pub(super) fn insert_message(&mut self, at: usize, message: Message) {
        let size = json_len(&message);
        self.message_bytes += size;
        self.message_sizes.insert(at, size);
        self.messages_from(at).insert(at, message);
    }

    pub(super) fn resize(&mut self, index: usize) {
        let size = json_len(&self.messages[index]);
        self.message_bytes = self.message_bytes - self.message_sizes[index] + size;
        self.message_sizes[index] = size;
    }

    pub(super) fn trim_messages(&mut self) {
        let mut drop = 0;
        let mut bytes = self.message_bytes;
        while bytes > self.limits.message_bytes() && drop < self.messages.len() {
            bytes -= self.message_sizes[drop];
            drop += 1;
        }
        if drop > 0 {
            self.messages_from(0).drain(..drop);
            self.message_sizes.drain(..drop);
            self.message_bytes = bytes;
        }
    }

    /// The owner of a message the tracker adds: the one already recorded for
    /// its id, so a snapshot never contradicts what clients were told, or the
    /// tag of the event that made it.
    pub(super) fn owner_of(&self, id: &str, tag: Option<&String>) -> Option<String> {
        match self.joined.message_owner(id) {
            Some(recorded) => recorded.clone(),
            None => tag.cloned(),
        }
    }

    /// A text message ended: its text joins the message with its id, or
    /// becomes a new message.
    pub(super) fn end_text(&mut self, start: &TextMessageStart, text: &str) {
        self.touched = Some(start.message_id.clone());
        if let Some(i) = self.message_index(&start.message_id) {
            if !text.is_empty() {
                // Text changes no owner: the seeded owners stay as they are.
                append_text(&mut Arc::make_mut(&mut self.messages)[i], text);
                self.resize(i);
            }
            return;
        }
        let id = start.message_id.clone();
        let name = start.name.clone();
        let subagent_run_id = self.owner_of(&id, start.subagent_run_id.as_ref());
        let content = text.to_owned();
        let message = match start.role.unwrap_or_default() {
            TextMessageRole::Assistant => Message::Assistant(AssistantMessage {
                subagent_run_id,
                id,
                name,
                content: Some(content),
                ..Default::default()
            }),
            TextMessageRole::User => Message::User(UserMessage {
                subagent_run_id,
                id,
                name,
                encrypted_value: None,
                metadata: None,
                content: Content::Text(content),
            }),
            TextMessageRole::System => Message::System(SystemMessage {
                subagent_run_id,
                id,
                name,
                content,
                ..Default::default()
            }),
            TextMessageRole::Developer => Message::Developer(DeveloperMessage {
                subagent_run_id,
                id,
                name,
                content,
                ..Default::default()
            }),
        };
        self.push_message(message);
    }

    /// A tool call ended: its arguments join the call with its id, or the call
    /// joins (or creates) the assistant message the client attached it to.
    pub(super) fn end_tool(&mut self, start: &ToolCallStart, args: &str) {
        if let Some(i) = self.tool_call_owner(&start.tool_call_id) {
            if let Message::Assistant(a) = &mut self.messages_from(i)[i]
                && let Some(call) = a
                    .tool_calls
                    .iter_mut()
                    .flatten()
                    .find(|c| c.id == start.tool_call_id)
            {
                call.function.arguments.push_str(args);
            }
            self.resize(i);
            self.touched = Some(self.messages[i].id().to_owned());
            return;
        }
        let call = ToolCall {
            id: start.tool_call_id.clone(),
            kind: ToolCallKind::Function,
            function: FunctionCall {
                name: start.tool_call_name.clone(),
                arguments: args.to_owned(),
            },
            encrypted_value: None,
            metadata: None,
        };
        // Where the client put the call: an assistant message with the parent
        // id, a text message still open under that id (which the client
        // created at its start), or a new assistant message.
        // A message the call creates belongs to the call's subagent, or keeps
        // the owner already recorded for its id.
        let created = |id: String| {
            let owner = self.owner_of(&id, start.subagent_run_id.as_ref());
            (id, owner, None)
        };
        let target = match start.parent_message_id.as_deref() {
            Some(parent) => match self.message_index(parent) {
                Some(i) if matches!(self.messages[i], Message::Assistant(_)) => Ok(i),
                Some(_) => Err(created(start.tool_call_id.clone())),
                None => match self.open_text(parent).map(|i| &self.open[i]) {
                    Some(Open::Text { start: text, .. }) => {
                        if text.role.unwrap_or_default() == TextMessageRole::Assistant {
                            Err((
                                parent.to_owned(),
                                self.owner_of(parent, text.subagent_run_id.as_ref()),
                                text.name.clone(),
                            ))
                        } else {
                            Err(created(start.tool_call_id.clone()))
                        }
                    }
                    _ => Err(created(parent.to_owned())),
                },
            },
            None => Err(created(start.tool_call_id.clone())),
        };
        match target {
            Ok(i) => {
                if let Message::Assistant(a) = &mut self.messages_from(i)[i] {
                    a.tool_calls.get_or_insert_with(Vec::new).push(call);
                }
                self.resize(i);
                self.touched = Some(self.messages[i].id().to_owned());
            }
            Err((id, subagent_run_id, name)) => {
                self.touched = Some(id.clone());
                self.push_message(Message::Assistant(AssistantMessage {
                    subagent_run_id,
                    id,
                    name,
                    tool_calls: Some(vec![call]),
                    ..Default::default()
                }));
            }
        }
    }

    /// A tool result goes right after the assistant message that made the call
    /// (after the results already there), as the client places it.
    pub(super) fn add_tool_result(&mut self, message: Message) {
        self.touched = Some(message.id().to_owned());
        if let Some(i) = self.message_index(message.id()) {
            self.messages_from(i)[i] = message;
            self.resize(i);
            return;
        }
        let Message::Tool(tool) = &message else {
            return;
        };
        match self.tool_call_owner(&tool.tool_call_id) {
            Some(owner) => {
                let mut at = owner + 1;
                while at < self.messages.len() && matches!(self.messages[at], Message::Tool(_)) {
                    at += 1;
                }
                self.insert_message(at, message);
            }
            None => self.push_message(message),
        }
    }
}
