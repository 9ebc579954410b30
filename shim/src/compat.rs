//! The thin layer that lets one binary built on containerd-shim 0.12 talk to containerd
//! 1.6, 1.7 and 2.x (docs/shim.md has the measurements behind it).
//!
//! containerd-shim 0.12 targets containerd ≥ 2.0 as shipped: its `start` action answers
//! with JSON (`{"address":…,"version":3}`), which containerd 1.6 dials as a socket path, and
//! its server registers only `containerd.task.v3.Task`, which 1.6 and 1.7 never call. So:
//!
//! - `start` answers like a task-API-v2 shim: the bare address. Every containerd from 1.6 to
//!   2.2 accepts that (2.x then talks task API v2 through its v2 bridge). containerd ≥ 2.3
//!   announces itself with protobuf `BootstrapParams` on stdin and gets a protobuf
//!   `BootstrapResult` naming task API v3, as containerd-shim 0.12 itself would answer.
//! - the one task service implementation is registered under both names, v2 and v3: the
//!   messages of the two versions are the same on the wire, only the service name differs.

use std::collections::HashMap;
use std::sync::Arc;

use containerd_shim::bootstrap::{BootstrapParams, BootstrapResult};
use containerd_shim::{Flags, StartOpts};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::{create_task, Task};
use containerd_shim_protos::ttrpc::r#async::Service;

use crate::error::{Error, Result};

pub const TASK_V2: &str = "containerd.task.v2.Task";
pub const TASK_V3: &str = "containerd.task.v3.Task";

/// How containerd started us, which decides the shape of the `start` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// containerd 1.6 – 2.2: flags + environment in, bare address out (task API v2).
    Legacy,
    /// containerd ≥ 2.3: `BootstrapParams` in, `BootstrapResult` out (task API v3).
    Bootstrap,
}

/// Reads what containerd gave the `start` action: `stdin` is the raw payload (runtime options
/// as a protobuf Any for the legacy protocol, `BootstrapParams` for containerd ≥ 2.3).
pub fn start_params(flags: &Flags, stdin: &[u8], ttrpc_env: String) -> (StartOpts, Protocol) {
    if let Ok(params) = BootstrapParams::parse_from_bytes(stdin) {
        // A legacy runtime-options Any also decodes as BootstrapParams (its fields overlap):
        // only a message naming exactly our instance is the real thing.
        if !stdin.is_empty()
            && params.instance_id == flags.id
            && params.namespace == flags.namespace
        {
            return (StartOpts::from(params), Protocol::Bootstrap);
        }
    }
    let opts = StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address: ttrpc_env,
        namespace: flags.namespace.clone(),
        debug: flags.debug,
        ..Default::default()
    };
    (opts, Protocol::Legacy)
}

/// The `start` action's reply on stdout.
pub fn start_reply(protocol: Protocol, address: &str) -> Result<Vec<u8>> {
    match protocol {
        Protocol::Legacy => Ok(address.as_bytes().to_vec()),
        Protocol::Bootstrap => BootstrapResult {
            version: containerd_shim_protos::TASK_API_VERSION,
            address: address.to_string(),
            protocol: "ttrpc".to_string(),
            ..Default::default()
        }
        .write_to_bytes()
        .map_err(|e| Error::Other(format!("encoding the bootstrap result: {e}"))),
    }
}

/// The task service under both API names.
pub fn task_services(service: Arc<dyn Task + Send + Sync>) -> HashMap<String, Service> {
    let mut services = create_task(service.clone());
    let mut v2 = create_task(service);
    // The generated code names the service after its proto package (v3); only the key
    // changes, the handlers are the same.
    if let Some(v) = v2.remove(TASK_V3) {
        services.insert(TASK_V2.to_string(), v);
    }
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags {
            id: "c1".into(),
            namespace: "ns".into(),
            address: "/run/containerd/containerd.sock".into(),
            ..Default::default()
        }
    }

    #[test]
    fn legacy_input_gets_a_bare_address() {
        let (opts, p) = start_params(&flags(), b"", "/t.ttrpc".into());
        assert_eq!(p, Protocol::Legacy);
        assert_eq!(opts.ttrpc_address, "/t.ttrpc");
        assert_eq!(
            start_reply(p, "unix:///run/containerd/s/x").ok(),
            Some(b"unix:///run/containerd/s/x".to_vec())
        );
    }

    #[test]
    fn runtime_options_are_not_bootstrap_params() {
        // containerd 1.6 pipes runc Options as an Any: it must stay the legacy protocol.
        let any = containerd_shim_protos::protobuf::well_known_types::any::Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0x1a, 0x02, b'/', b's'],
            ..Default::default()
        };
        let bytes = any.write_to_bytes().unwrap_or_default();
        let (_, p) = start_params(&flags(), &bytes, String::new());
        assert_eq!(p, Protocol::Legacy);
    }

    #[test]
    fn bootstrap_input_gets_a_bootstrap_result() {
        let params = BootstrapParams {
            instance_id: "c1".into(),
            namespace: "ns".into(),
            containerd_ttrpc_address: "/b.ttrpc".into(),
            ..Default::default()
        };
        let bytes = params.write_to_bytes().unwrap_or_default();
        let (opts, p) = start_params(&flags(), &bytes, String::new());
        assert_eq!(p, Protocol::Bootstrap);
        assert_eq!(opts.ttrpc_address, "/b.ttrpc");
        let reply = start_reply(p, "unix:///s").unwrap_or_default();
        let r = BootstrapResult::parse_from_bytes(&reply).unwrap_or_default();
        assert_eq!(r.address, "unix:///s");
        assert_eq!(r.version, 3);
    }

    #[test]
    fn both_service_names_are_served() {
        struct Nothing;
        impl Task for Nothing {}
        let s = task_services(Arc::new(Nothing));
        assert!(s.contains_key(TASK_V2) && s.contains_key(TASK_V3));
    }
}
