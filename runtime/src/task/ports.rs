//! portMappings: for each TCP containerPort, a listener on the host's 127.0.0.1:<hostPort> (hostPort
//! = containerPort in awsvpc mode) whose connections are forwarded to 127.0.0.1:<containerPort> inside
//! the task's network namespace. No routed addresses, veths or NAT: the task's netns has only
//! loopback, and the forwarder is the only way in, as a load balancer target would be.
//!
//! A socket belongs to the network namespace it was created in, so one "dialer" thread enters the
//! task's netns once (setns) and creates every upstream socket there; the listener and the copy
//! threads stay in the host's namespace.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use super::Error;

type DialReply = Sender<io::Result<TcpStream>>;

/// The running forwarders of a task; dropping it stops them.
pub struct Forwarders {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    dialer: Option<Sender<(u16, DialReply)>>,
    ports: Vec<u16>,
}

impl Forwarders {
    /// Binds every listener (so a busy port fails the task before any container starts) and
    /// starts forwarding.
    pub fn start(netns: &Path, ports: &[u16]) -> Result<Forwarders, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut fw = Forwarders {
            stop: stop.clone(),
            threads: Vec::new(),
            dialer: None,
            ports: ports.to_vec(),
        };
        if ports.is_empty() {
            return Ok(fw);
        }
        let ns =
            File::open(netns).map_err(|e| Error::io(format!("opening {}", netns.display()), e))?;
        let (dial_tx, dial_rx) = channel::<(u16, DialReply)>();
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
                while let Ok((port, reply)) = dial_rx.recv() {
                    let addr = SocketAddr::from(([127, 0, 0, 1], port));
                    let _ = reply.send(TcpStream::connect_timeout(&addr, Duration::from_secs(5)));
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

fn accept_loop(
    listener: TcpListener,
    port: u16,
    dial: Sender<(u16, DialReply)>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let (tx, rx) = channel();
                if dial.send((port, tx)).is_err() {
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

/// The TCP host ports a task's containers map (UDP mappings are refused earlier).
pub fn tcp_ports(plan: &berth_taskdef::TaskPlan) -> Vec<u16> {
    let mut ports: Vec<u16> = plan
        .containers
        .iter()
        .flat_map(|c| c.port_mappings.iter())
        .filter(|p| p.protocol == "tcp")
        .flat_map(|p| p.container_port..=p.container_port_end)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}
