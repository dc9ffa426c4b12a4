//! [`TrackerLimits`]: how much a [`RunTracker`](super::RunTracker) keeps per session.

/// How much a [`RunTracker`](super::RunTracker) keeps per session.
///
/// ```
/// use tether_agui::TrackerLimits;
///
/// let limits = TrackerLimits::default().max_state_bytes(1 << 20).max_open(64);
/// assert_eq!(limits.state_bytes(), 1 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct TrackerLimits {
    message_bytes: usize,
    state_bytes: usize,
    open_bytes: usize,
    open: usize,
}

impl Default for TrackerLimits {
    fn default() -> Self {
        Self {
            message_bytes: 4 << 20,
            state_bytes: 4 << 20,
            open_bytes: 4 << 20,
            open: 256,
        }
    }
}

impl TrackerLimits {
    /// Bytes (as JSON) of the completed messages a snapshot carries; beyond it
    /// the oldest messages are dropped from the snapshot. Default is 4 MiB.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.message_bytes = bytes;
        self
    }
    /// Bytes (as JSON, approximately) of the agent state; a `STATE_SNAPSHOT` or
    /// `STATE_DELTA` that makes it larger is refused. Default is 4 MiB.
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.state_bytes = bytes;
        self
    }
    /// Bytes of text and tool-call arguments streamed so far into the open
    /// messages, tool calls and reasoning messages of a run, together; content
    /// beyond it is refused. Default is 4 MiB.
    pub fn max_open_bytes(mut self, bytes: usize) -> Self {
        self.open_bytes = bytes;
        self
    }
    /// Entities open at once in a run (text messages, tool calls, reasoning
    /// spans and messages, steps), and subagents started in a run; openers
    /// beyond it are refused. Default is 256.
    pub fn max_open(mut self, count: usize) -> Self {
        self.open = count;
        self
    }
    /// The limit set by [`max_message_bytes`](Self::max_message_bytes).
    pub fn message_bytes(&self) -> usize {
        self.message_bytes
    }
    /// The limit set by [`max_state_bytes`](Self::max_state_bytes).
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }
    /// The limit set by [`max_open_bytes`](Self::max_open_bytes).
    pub fn open_bytes(&self) -> usize {
        self.open_bytes
    }
    /// The limit set by [`max_open`](Self::max_open).
    pub fn open(&self) -> usize {
        self.open
    }
}
