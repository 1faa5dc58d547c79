//! The connections agents hold to the master, watched for their end.
//!
//! Every accepted connection is a [`Watched`] socket, and its connection
//! info a [`Peer`] that the `Master` service marks with the agent whose
//! registration or heartbeat came over it. When such a connection closes
//! (the agent's process died and its kernel closed its sockets, or it
//! reconnects), the agent is handed to the core, which checks its port at
//! once ([`Core::agent_disconnected`]): an agent whose port refuses
//! connections is lost then, as Spark removes an executor whose connection
//! disassociated, not after `lost-after` missed heartbeats. See
//! `docs/architecture.md` (agents and their loss).
//!
//! [`Core::agent_disconnected`]: crate::state::Core::agent_disconnected

use futures::{Stream, StreamExt};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use weft_core::ids::AgentId;

/// What a request knows of the connection it came over: its addresses, and
/// the agent it carries, once one said so.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    tcp: TcpConnectInfo,
    agent: Arc<Mutex<Option<AgentId>>>,
}

impl Peer {
    /// The connection `request` came over (with or without TLS).
    pub(crate) fn of<T>(request: &tonic::Request<T>) -> Option<&Peer> {
        let ext = request.extensions();
        ext.get::<Peer>().or_else(|| ext.get::<TlsConnectInfo<Peer>>().map(TlsConnectInfo::get_ref))
    }

    /// The connection carries `agent`'s calls: its end is news of `agent`.
    pub(crate) fn carries(&self, agent: AgentId) {
        *self.agent.lock().unwrap_or_else(PoisonError::into_inner) = Some(agent);
    }

    /// The address the connection came from.
    pub(crate) fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.remote_addr()
    }
}

/// An accepted socket that reports, when it is dropped (the server is done
/// with its connection), the agent it carried.
pub(crate) struct Watched {
    socket: TcpStream,
    peer: Peer,
    closed: mpsc::UnboundedSender<AgentId>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(agent) = self.peer.agent.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = self.closed.send(agent);
        }
    }
}

impl Connected for Watched {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// Wrap each socket `incoming` accepts; the receiver hears of the agent of
/// each connection that ends.
pub(crate) fn watch(
    incoming: impl Stream<Item = io::Result<TcpStream>>,
) -> (impl Stream<Item = io::Result<Watched>>, mpsc::UnboundedReceiver<AgentId>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let watched = incoming.map(move |accepted| {
        accepted.map(|socket| {
            let tcp = socket.connect_info();
            Watched { socket, peer: Peer { tcp, agent: Arc::default() }, closed: tx.clone() }
        })
    });
    (watched, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection marked with an agent reports it once when the server
    /// drops it; an unmarked one reports nothing.
    #[tokio::test]
    async fn a_connection_that_carried_an_agent_names_it_when_it_ends() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let (mut accepted, mut closed) = watch(incoming);
        let _a = TcpStream::connect(addr).await.unwrap();
        let first = accepted.next().await.unwrap().unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let second = accepted.next().await.unwrap().unwrap();
        let agent = AgentId { incarnation: weft_core::ids::Incarnation(7), seq: 3 };
        first.connect_info().carries(agent);
        assert_eq!(first.connect_info().remote_addr(), Some(_a.local_addr().unwrap()));
        drop(second);
        assert!(closed.try_recv().is_err(), "an unmarked connection names no agent");
        drop(first);
        assert_eq!(closed.try_recv().ok(), Some(agent));
        assert!(closed.try_recv().is_err(), "named once");
    }
}
