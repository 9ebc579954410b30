//! portMappings: for each TCP containerPort, a listener on the host's 127.0.0.1:<hostPort> (hostPort
//! = containerPort in awsvpc mode) whose connections are forwarded to 127.0.0.1:<containerPort> inside
//! the task's network namespace. No routed addresses, veths or NAT: the task's netns has only
//! loopback, and the forwarder is the only way in, as a load balancer target would be.
//!
//! UDP mappings get a socket bound to the host's 127.0.0.1:<port>; each client address gets a
//! session: an upstream socket in the task's netns connected to 127.0.0.1:<containerPort>, and a
//! thread sending its replies back to that client from the host socket. A session ends after
//! [`UDP_IDLE`] without a datagram either way (as Docker's userland proxy does, there is no
//! connection to close); at most [`UDP_MAX_SESSIONS`] live per port, datagrams from further clients
//! are dropped.
//!
//! A socket belongs to the network namespace it was created in, so one "dialer" thread enters the
//! task's netns once (setns) and creates every upstream socket there; the listener and the copy
//! threads stay in the host's namespace.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use super::Error;

/// A UDP session ends after this long without a datagram in either direction.
pub const UDP_IDLE: Duration = Duration::from_secs(60);
/// Client addresses forwarded at once per UDP port.
pub const UDP_MAX_SESSIONS: usize = 256;
/// How often blocked loops look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// What the dialer thread makes inside the task's netns.
enum Dial {
    Tcp(u16, Sender<io::Result<TcpStream>>),
    Udp(u16, Sender<io::Result<UdpSocket>>),
}

/// The running forwarders of a task; dropping it stops them.
pub struct Forwarders {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    dialer: Option<Sender<Dial>>,
    ports: Vec<u16>,
}

impl Forwarders {
    /// Binds every listener and UDP socket (so a busy port fails the task before any container
    /// starts) and starts forwarding.
    pub fn start(netns: &Path, ports: &[u16], udp_ports: &[u16]) -> Result<Forwarders, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut fw = Forwarders {
            stop: stop.clone(),
            threads: Vec::new(),
            dialer: None,
            ports: ports.to_vec(),
        };
        if ports.is_empty() && udp_ports.is_empty() {
            return Ok(fw);
        }
        let ns =
            File::open(netns).map_err(|e| Error::io(format!("opening {}", netns.display()), e))?;
        let (dial_tx, dial_rx) = channel::<Dial>();
        let (ready_tx, ready_rx) = channel::<io::Result<()>>();
        let dialer = std::thread::Builder::new()
            .name("port-dialer".into())
            .spawn(move || {
                // This thread never leaves the task's netns: it only creates upstream sockets.
                if let Err(e) = setns(ns.as_fd(), CloneFlags::CLONE_NEWNET) {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                while let Ok(req) = dial_rx.recv() {
                    match req {
                        Dial::Tcp(port, reply) => {
                            let addr = SocketAddr::from(([127, 0, 0, 1], port));
                            let _ = reply
                                .send(TcpStream::connect_timeout(&addr, Duration::from_secs(5)));
                        }
                        Dial::Udp(port, reply) => {
                            let _ = reply.send(udp_upstream(port));
                        }
                    }
                }
            })
            .map_err(|e| Error::io("starting the port dialer", e))?;
        fw.threads.push(dialer);
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("dialer thread ended")))
            .map_err(|e| Error::io("entering the task's network namespace", e))?;
        fw.dialer = Some(dial_tx.clone());
        for &port in ports {
            let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
                Error::io(format!("portMappings: listening on 127.0.0.1:{port}"), e)
            })?;
            listener
                .set_nonblocking(true)
                .map_err(|e| Error::io("listener", e))?;
            let stop = stop.clone();
            let dial = dial_tx.clone();
            let t = std::thread::Builder::new()
                .name(format!("port-{port}"))
                .spawn(move || accept_loop(listener, port, dial, stop))
                .map_err(|e| Error::io("starting a port forwarder", e))?;
            fw.threads.push(t);
        }
        for &port in udp_ports {
            let socket = UdpSocket::bind(("127.0.0.1", port))
                .map_err(|e| Error::io(format!("portMappings: udp on 127.0.0.1:{port}"), e))?;
            socket
                .set_read_timeout(Some(POLL))
                .map_err(|e| Error::io("udp socket", e))?;
            let stop = stop.clone();
            let dial = dial_tx.clone();
            let t = std::thread::Builder::new()
                .name(format!("udp-{port}"))
                .spawn(move || udp_loop(socket, port, dial, stop))
                .map_err(|e| Error::io("starting a udp forwarder", e))?;
            fw.threads.push(t);
        }
        Ok(fw)
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Closing the request channel ends the dialer once the listeners have dropped theirs.
        self.dialer = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Forwarders {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, port: u16, dial: Sender<Dial>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let (tx, rx) = channel();
                if dial.send(Dial::Tcp(port, tx)).is_err() {
                    return;
                }
                let upstream = match rx.recv() {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(port, error = %e, "port forward: connect in task failed");
                        continue;
                    }
                    Err(_) => return,
                };
                // Copy threads are detached: each ends when its side closes.
                let _ = splice_both(client, upstream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Polling keeps shutdown simple (no self-connect to wake a blocking accept).
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::debug!(port, error = %e, "accept");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn splice_both(a: TcpStream, b: TcpStream) -> io::Result<()> {
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    std::thread::spawn(move || copy_half(a, b));
    std::thread::spawn(move || copy_half(b2, a2));
    Ok(())
}

fn copy_half(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    // Half-close so the other side sees EOF while the reverse direction finishes.
    let _ = to.shutdown(Shutdown::Write);
}

/// An upstream socket for a UDP session; called on the dialer thread, inside the task's netns.
fn udp_upstream(port: u16) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(("127.0.0.1", 0))?;
    s.connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(POLL))?;
    Ok(s)
}

struct Session {
    upstream: Arc<UdpSocket>,
    /// Milliseconds since the forwarder's epoch at the last datagram either way.
    last: Arc<AtomicU64>,
    /// Set by the reply thread when it ends (idle, error or stop).
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn udp_loop(socket: UdpSocket, port: u16, dial: Sender<Dial>, stop: Arc<AtomicBool>) {
    let socket = Arc::new(socket);
    let epoch = Instant::now();
    let now_ms = move || epoch.elapsed().as_millis() as u64;
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        // Sessions whose reply thread ended (idle) are dropped; a later datagram makes a new one.
        sessions.retain(|_, s| !s.done.load(Ordering::SeqCst));
        let (n, client) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!(port, error = %e, "udp recv");
                std::thread::sleep(POLL);
                continue;
            }
        };
        if !sessions.contains_key(&client) {
            if sessions.len() >= UDP_MAX_SESSIONS {
                tracing::debug!(port, %client, "udp: session limit reached, datagram dropped");
                continue;
            }
            let (tx, rx) = channel();
            if dial.send(Dial::Udp(port, tx)).is_err() {
                break;
            }
            let upstream = match rx.recv() {
                Ok(Ok(s)) => Arc::new(s),
                Ok(Err(e)) => {
                    tracing::debug!(port, error = %e, "udp: upstream socket in task failed");
                    continue;
                }
                Err(_) => break,
            };
            let last = Arc::new(AtomicU64::new(now_ms()));
            let done = Arc::new(AtomicBool::new(false));
            let reply = {
                let (upstream, socket, last, done, stop) = (
                    upstream.clone(),
                    socket.clone(),
                    last.clone(),
                    done.clone(),
                    stop.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("udp-{port}-reply"))
                    .spawn(move || {
                        udp_replies(&upstream, &socket, client, &last, &stop, now_ms, UDP_IDLE);
                        done.store(true, Ordering::SeqCst);
                    })
            };
            let thread = match reply {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(port, error = %e, "udp: starting a reply thread");
                    continue;
                }
            };
            sessions.insert(
                client,
                Session {
                    upstream,
                    last,
                    done,
                    thread,
                },
            );
        }
        if let Some(s) = sessions.get(&client) {
            s.last.store(now_ms(), Ordering::SeqCst);
            // ECONNREFUSED (nothing listening in the task yet) loses the datagram, as UDP does.
            let _ = s.upstream.send(&buf[..n]);
        }
    }
    // The reply threads see `stop` within POLL; joined so no clone of the port's socket
    // outlives the forwarder.
    stop.store(true, Ordering::SeqCst);
    for (_, s) in sessions.drain() {
        let _ = s.thread.join();
    }
}

/// Copies datagrams from a session's upstream back to its client until the session is idle for
/// `idle` ([`UDP_IDLE`]) or the forwarder stops.
fn udp_replies(
    upstream: &UdpSocket,
    socket: &UdpSocket,
    client: SocketAddr,
    last: &AtomicU64,
    stop: &AtomicBool,
    now_ms: impl Fn() -> u64,
    idle: Duration,
) {
    let mut buf = vec![0u8; 65536];
    let idle_ms = idle.as_millis() as u64;
    while !stop.load(Ordering::SeqCst) {
        match upstream.recv(&mut buf) {
            Ok(n) => {
                last.store(now_ms(), Ordering::SeqCst);
                let _ = socket.send_to(&buf[..n], client);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // ECONNREFUSED after a datagram nobody received: the session stays, the next
            // datagram may find a listener.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(_) => return,
        }
        if now_ms().saturating_sub(last.load(Ordering::SeqCst)) > idle_ms {
            return;
        }
    }
}

/// The host ports a task's containers map with `protocol` ("tcp" or "udp").
pub fn host_ports(plan: &berth_taskdef::TaskPlan, protocol: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = plan
        .containers
        .iter()
        .flat_map(|c| c.port_mappings.iter())
        .filter(|p| p.protocol == protocol)
        .flat_map(|p| p.container_port..=p.container_port_end)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's reply thread copies the task's replies to its client through the host socket,
    /// and ends on its own once no datagram has passed for the idle timeout.
    #[test]
    fn udp_session_copies_replies_then_expires_when_idle() {
        let bind = || UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (task_side, upstream, host, client) = (bind(), bind(), bind(), bind());
        upstream
            .connect(task_side.local_addr().expect("addr"))
            .expect("connect");
        upstream.set_read_timeout(Some(POLL)).expect("timeout");
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let (upstream_addr, client_addr) = (
            upstream.local_addr().expect("addr"),
            client.local_addr().expect("addr"),
        );
        let host_addr = host.local_addr().expect("addr");
        let epoch = Instant::now();
        let now_ms = move || epoch.elapsed().as_millis() as u64;
        let last = Arc::new(AtomicU64::new(now_ms()));
        let stop = Arc::new(AtomicBool::new(false));
        let idle = Duration::from_millis(500);
        let t = {
            let (last, stop) = (last.clone(), stop.clone());
            std::thread::spawn(move || {
                udp_replies(&upstream, &host, client_addr, &last, &stop, now_ms, idle)
            })
        };
        task_side.send_to(b"pong", upstream_addr).expect("send");
        let mut buf = [0u8; 16];
        let (n, from) = client
            .recv_from(&mut buf)
            .expect("reply reaches the client");
        assert_eq!((&buf[..n], from), (&b"pong"[..], host_addr));
        let replied = Instant::now();
        t.join().expect("reply thread");
        let quiet = replied.elapsed();
        assert!(
            quiet >= idle - POLL,
            "ended before the idle timeout: {quiet:?}"
        );
        assert!(quiet < idle * 4, "did not expire: {quiet:?}");
    }
}
