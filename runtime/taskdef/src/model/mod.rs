//! The serde model of an ECS task definition.
//!
//! Every field of the ECS API's `TaskDefinition` (RegisterTaskDefinition input plus the read-only fields of
//! DescribeTaskDefinition output) is modelled, with the camelCase names the AWS CLI prints. Every struct
//! denies unknown fields: a misspelt or foreign key is a parse error naming its path, because silently
//! dropping a field would run something other than what the author wrote.
//!
//! Nearly every field is an `Option` (as in the AWS SDKs) so that a missing required field is reported by
//! the validator as `family: required` instead of a serde error, and so that "absent" and "default" stay
//! distinguishable for the Fargate rules. Enumerated values (networkMode, condition, protocol, ...) are kept
//! as strings for the same reason: the validator names the path and the allowed values.

mod container;
mod size;
mod volume;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use container::{
    Capabilities, ContainerDefinition, ContainerDependency, Device, EnvironmentFile,
    FirelensConfiguration, HealthCheck, HostEntry, KeyValuePair, LinuxParameters, LogConfiguration,
    MountPoint, PortMapping, RepositoryCredentials, ResourceRequirement, RestartPolicy, Secret,
    SystemControl, Tmpfs, Ulimit, VolumeFrom,
};
pub use size::TaskSize;
pub use volume::{
    DockerVolumeConfiguration, EfsAuthorizationConfig, EfsVolumeConfiguration,
    FsxWindowsAuthorizationConfig, FsxWindowsFileServerVolumeConfiguration, HostVolumeProperties,
    Volume,
};

/// An ECS task definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinition {
    pub family: Option<String>,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub network_mode: Option<String>,
    pub container_definitions: Option<Vec<ContainerDefinition>>,
    pub volumes: Option<Vec<Volume>>,
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    pub requires_compatibilities: Option<Vec<String>>,
    /// Task cpu units: `"256"`, `"1 vCPU"`, `"0.25 vcpu"` (or a JSON number).
    pub cpu: Option<TaskSize>,
    /// Task memory in MiB: `"512"`, `"2 GB"`, `"2GB"` (or a JSON number).
    pub memory: Option<TaskSize>,
    pub tags: Option<Vec<Tag>>,
    pub pid_mode: Option<String>,
    pub ipc_mode: Option<String>,
    pub proxy_configuration: Option<ProxyConfiguration>,
    pub inference_accelerators: Option<Vec<InferenceAccelerator>>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    pub runtime_platform: Option<RuntimePlatform>,
    pub enable_fault_injection: Option<bool>,

    // Read-only fields of DescribeTaskDefinition output. They are accepted so that `aws ecs
    // describe-task-definition` output can be fed in unchanged, and ignored: they describe a registration
    // in an AWS account, not what to run.
    pub task_definition_arn: Option<String>,
    pub revision: Option<i64>,
    pub status: Option<String>,
    pub compatibilities: Option<Vec<String>>,
    pub requires_attributes: Option<Vec<Attribute>>,
    pub registered_at: Option<Timestamp>,
    pub registered_by: Option<String>,
    pub deregistered_at: Option<Timestamp>,
}

/// `aws ecs describe-task-definition` output: the definition plus its tags, which the API returns beside
/// (not inside) the definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DescribeTaskDefinitionOutput {
    pub task_definition: TaskDefinition,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementConstraint {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub expression: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tag {
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfiguration {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub container_name: Option<String>,
    pub properties: Option<Vec<KeyValuePair>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceAccelerator {
    pub device_name: Option<String>,
    pub device_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EphemeralStorage {
    #[serde(rename = "sizeInGiB")]
    pub size_in_gib: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimePlatform {
    pub cpu_architecture: Option<String>,
    pub operating_system_family: Option<String>,
}

/// An entry of the read-only `requiresAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attribute {
    pub name: Option<String>,
    pub value: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
}

/// registeredAt / deregisteredAt: the AWS CLI prints an ISO-8601 string, the raw API JSON an epoch number.
/// Both are read-only and never interpreted, so both are kept as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    Epoch(f64),
    Text(String),
}

/// A string → string map such as dockerLabels or logConfiguration.options; ordered so that plans and
/// serialized output are deterministic.
pub type StringMap = BTreeMap<String, String>;
