//! berth: a Fargate-style sandbox runtime. This crate is the one core that the `berth` OCI
//! runtime CLI, the containerd shim and the task runner share.
//!
//! - [`spec`]: config.json loading and validation (nothing touched until it is known good)
//! - [`container`]: the OCI lifecycle (create/start/state/kill/delete, exec, pause, update)
//! - [`init`]: the container side of create/exec, after berth re-executes from a sealed copy
//! - [`linux`]: namespaces, mounts, devices, capabilities, seccomp, console; all raw syscalls
//! - [`cgroups`]: the adapter over youki's libcgroups (v1, hybrid, v2)
//! - [`state`]: state records under the state root, status derived from the live system
//! - [`sync`]: the parent/child channel; [`hooks`]: OCI hooks
//! - [`task`]: ECS task definitions run as sandboxes (task cgroup, shared netns, dependsOn, health)
//!
//! docs/DESIGN.md in the repository explains the process model and the decisions taken.

pub mod cgroups;
pub mod container;
pub mod hooks;
pub mod image;
pub mod init;
pub mod linux;
pub mod spec;
pub mod state;
pub mod sync;
pub mod task;
