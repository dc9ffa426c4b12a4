//! The body of a response: complete bytes or a live event stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Frame, SizeHint};

use crate::stream::EventStream;

/// A response body of the HTTP layer.
///
/// It implements both [`http_body::Body`] (for hyper-based frameworks: axum's
/// `Body::new(body)`, warp) and [`Stream`] of [`Bytes`] (for actix-web's `streaming`). A live
/// stream's bytes are the core's pre-encoded frames, passed through as they are: a framework's
/// own SSE type would encode them again.
#[derive(Debug)]
pub enum Body {
    /// A complete body (JSON, or the short answer of a draining server). Empty for 204.
    Full(Bytes),
    /// A session's live SSE stream.
    Stream(EventStream),
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
            Self::Stream(_) => None,
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
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::Full(b) if b.is_empty() => (0, Some(0)),
            Self::Full(_) => (1, Some(1)),
            Self::Stream(_) => (0, None),
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
            Self::Stream(_) => SizeHint::default(),
        }
    }
}
