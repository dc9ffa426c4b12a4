//! The body of a response: complete bytes or a live event stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Frame, SizeHint};

use crate::stream::EventStream;

/// A stream of chunks for [`Body::Chunks`]: a session's stream shaped by a route extension
/// (the AG-UI run route ends it after the run's last event).
pub type ChunkStream = Pin<Box<dyn Stream<Item = Bytes> + Send + 'static>>;

/// A response body of the HTTP layer.
///
/// It implements both [`http_body::Body`] (for hyper-based frameworks: axum's
/// `Body::new(body)`, warp) and [`Stream`] of [`Bytes`] (for actix-web's `streaming`). A live
/// stream's bytes are the core's pre-encoded frames, passed through as they are: a framework's
/// own SSE type would encode them again.
pub enum Body {
    /// A complete body (JSON, or the short answer of a draining server). Empty for 204.
    Full(Bytes),
    /// A session's live SSE stream.
    Stream(EventStream),
    /// Another stream of pre-encoded chunks, from a route extension.
    Chunks(ChunkStream),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(b) => f.debug_tuple("Full").field(b).finish(),
            Self::Stream(s) => f.debug_tuple("Stream").field(s).finish(),
            Self::Chunks(_) => f.write_str("Chunks(..)"),
        }
    }
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::Full(Bytes::new())
    }

    /// The complete bytes, if this is not a live stream (for tests and logging).
    pub fn as_full(&self) -> Option<&Bytes> {
        match self {
            Self::Full(b) => Some(b),
            Self::Stream(_) | Self::Chunks(_) => None,
        }
    }

    /// Whether this is a live stream (of either kind): a server streams it chunk by chunk.
    pub fn is_stream(&self) -> bool {
        !matches!(self, Self::Full(_))
    }

    /// Tells a session's stream that writing to its client failed on the server's side, so
    /// its end is counted as an error rather than a client leaving.
    pub fn fail(&mut self, error: &std::io::Error) {
        if let Self::Stream(s) = self {
            s.fail(error);
        }
    }

    /// Tells a session's stream that its client stopped reading (a write or read timed
    /// out), so its end is counted as a timeout.
    pub fn timed_out(&mut self) {
        if let Self::Stream(s) = self {
            s.timed_out();
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::Full(b)
    }
}

impl From<EventStream> for Body {
    fn from(s: EventStream) -> Self {
        Self::Stream(s)
    }
}

impl Stream for Body {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        match self.get_mut() {
            Self::Full(b) if b.is_empty() => Poll::Ready(None),
            Self::Full(b) => Poll::Ready(Some(std::mem::take(b))),
            Self::Stream(s) => Pin::new(s).poll_next(cx),
            Self::Chunks(s) => s.as_mut().poll_next(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::Full(b) if b.is_empty() => (0, Some(0)),
            Self::Full(_) => (1, Some(1)),
            Self::Stream(_) | Self::Chunks(_) => (0, None),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Stream::poll_next(self, cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(b) if b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(b) => SizeHint::with_exact(b.len() as u64),
            Self::Stream(_) | Self::Chunks(_) => SizeHint::default(),
        }
    }
}
