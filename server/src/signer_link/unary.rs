//! A signer channel that sends each request's message and its end of stream in one HTTP/2
//! frame.
//!
//! tonic hands hyper a request body that is a stream of encoded messages; hyper sends the
//! message as a DATA frame and, when the stream then ends, a second, empty DATA frame with
//! END_STREAM — usually in a write of its own. On the signer link that is one more TLS
//! record, socket write, wake-up and read on both sides for every Sign, about a fifth of the
//! link's cost per call (strace of bench/scale.sh's publishers: 2.5 writes per Sign on the
//! server's signer connection). Every call of notary-signer's API is unary, so the body is
//! read whole first (tonic encodes it at once) and sent as one chunk that already says it is
//! the last: HEADERS and DATA(END_STREAM) leave in one write. The bytes on the wire are the
//! same gRPC message; no length header is added (the body gives no exact size).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::transport::Channel;

/// [`Channel`] with request bodies sent whole (see the module doc).
#[derive(Clone, Debug)]
pub struct UnaryChannel(Channel);

impl UnaryChannel {
    pub fn new(channel: Channel) -> Self {
        UnaryChannel(channel)
    }
}

/// One chunk, ending the stream as it is taken.
struct Whole(Option<Bytes>);

impl Body for Whole {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Not exact on purpose: an exact size makes hyper add content-length, which gRPC
        // requests do not carry.
        SizeHint::default()
    }
}

/// Every data frame of `body`, joined (trailers of a request body are not part of gRPC).
async fn read_whole(mut body: tonic::body::Body) -> Result<Bytes, tonic::Status> {
    let mut chunks: Vec<Bytes> = Vec::with_capacity(1);
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            chunks.push(data);
        }
    }
    Ok(match chunks.len() {
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Request<tonic::body::Body>> for UnaryChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // The clone that was made ready is the one that sends (tower's rule for buffers).
        let mut ready = self.0.clone();
        std::mem::swap(&mut ready, &mut self.0);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = read_whole(body).await?;
            let body = tonic::body::Body::new(Whole(Some(bytes)));
            tower::Service::call(&mut ready, http::Request::from_parts(parts, body))
                .await
                .map_err(Into::into)
        })
    }
}
