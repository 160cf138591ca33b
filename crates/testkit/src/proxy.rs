//! A TCP proxy a test controls, put between the application and a server (PostgreSQL) to
//! take that server away and give it back without touching the server itself, which other
//! tests share.
//!
//! [`TcpProxy::cut`] is the server going away: every connection through the proxy is closed
//! and new ones are closed as soon as they are accepted (as a stopped server's port refuses
//! them). [`TcpProxy::restore`] forwards new connections again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// A running proxy; stops (closing every connection) when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `target`.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let (open, connections) = (open.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(forward(client, target));
                    let mut list = connections.lock().unwrap();
                    list.retain(|c| !c.is_finished());
                    list.push(task.abort_handle());
                }
            })
        };
        Self {
            addr,
            open,
            connections,
            accept,
        }
    }

    /// The address to connect to instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// `url` (a `postgres://` URL) with its host and port replaced by `addr`.
///
/// # Panics
/// When `url` has no host.
pub fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let credentials = authority.rsplit_once('@').map(|(c, _)| format!("{c}@"));
    format!(
        "{scheme}://{}{addr}/{path}",
        credentials.unwrap_or_default()
    )
}

/// The host and port of `url` (a `postgres://` URL), resolved.
///
/// # Panics
/// When `url` has no resolvable host.
pub fn target_of(url: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    host.to_socket_addrs().unwrap().next().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_to_go_through_the_proxy() {
        let addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        assert_eq!(
            through("postgres://postgres@127.0.0.1:5432/test", addr),
            "postgres://postgres@127.0.0.1:40001/test"
        );
        assert_eq!(
            through("postgres://u:p@db/test?sslmode=disable", addr),
            "postgres://u:p@127.0.0.1:40001/test?sslmode=disable"
        );
        assert_eq!(
            target_of("postgres://postgres@127.0.0.1:5432/test"),
            "127.0.0.1:5432".parse().unwrap()
        );
        assert_eq!(
            target_of("postgres://127.0.0.1/test"),
            "127.0.0.1:5432".parse().unwrap()
        );
    }
}
