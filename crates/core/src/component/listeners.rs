//! Listening sockets, kept across reloads: a reloaded receiver on the same address takes a clone
//! of the socket the old one used, so connections queue in the backlog during the switch instead
//! of being refused.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::Mutex;

#[derive(Default)]
pub struct ListenerPool {
    sockets: Mutex<HashMap<String, std::net::TcpListener>>,
}

impl ListenerPool {
    /// A listener for `endpoint` (`host:port`): the kept socket, or a newly bound one.
    pub fn listen(&self, endpoint: &str) -> std::io::Result<tokio::net::TcpListener> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let std_listener = match sockets.get(endpoint) {
            Some(l) => l.try_clone()?,
            None => {
                let addr = endpoint.to_socket_addrs()?.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address")
                })?;
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                sockets.insert(endpoint.to_string(), l.try_clone()?);
                l
            }
        };
        tokio::net::TcpListener::from_std(std_listener)
    }

    /// Closes kept sockets no longer named in `endpoints` (after a reload moved off them).
    pub fn retain(&self, endpoints: &[String]) {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        sockets.retain(|k, _| endpoints.contains(k));
    }
}
