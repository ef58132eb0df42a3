//! The backup object as the document describes it. Stored documents travel as text,
//! byte for byte, so no handler builds these types: they are the documented shape of what
//! `csbs_domain::BackupRecord::from_json` accepted and stored.

use csbs_domain::BackupStatus;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

use crate::openapi::{canonical_uuid, nullable, stored_time, text_value};

/// A backup ("checkpoint item", spec §2), exactly as it was stored: keys the document does not
/// name are kept, numbers keep their digits. `project_id` and `policy_id` are known for each
/// item and filterable, but are not part of the object.
#[derive(ToSchema)]
pub struct CheckpointItem {
    /// The backup's id (lowercase, hyphenated).
    #[schema(schema_with = canonical_uuid)]
    pub id: String,
    /// Its name.
    #[schema(max_length = 255)]
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Where it is in its lifecycle.
    pub status: BackupStatus,
    /// The backup record it belongs to (lowercase, hyphenated).
    #[schema(schema_with = canonical_uuid)]
    pub checkpoint_id: String,
    /// The protected server.
    #[schema(schema_with = text_value)]
    pub resource_id: String,
    /// The kind of resource, e.g. `OS::Nova::Server`.
    #[schema(schema_with = text_value)]
    pub resource_type: String,
    /// When the backup was made.
    #[schema(schema_with = stored_time)]
    pub created_at: String,
    /// When the service last stored a change of it.
    #[schema(schema_with = stored_time)]
    pub updated_at: String,
    /// When its data was protected.
    #[schema(schema_with = nullable_stored_time)]
    pub protected_at: Option<String>,
    /// Tags.
    pub tags: Option<Vec<Tag>>,
    /// What was backed up.
    pub backup_data: Option<BackupData>,
    /// Progress and details reported by the backup engine.
    pub extend_info: Option<ExtendInfo>,
}

fn nullable_stored_time() -> ObjectBuilder {
    stored_time().schema_type(nullable(Type::String))
}

/// A tag of a backup.
#[derive(ToSchema)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// What was backed up (spec §2). Optional members may be `null` or absent.
#[derive(ToSchema)]
pub struct BackupData {
    /// The server's public address (an address, or `""` when it has none).
    pub eip: Option<String>,
    /// The server's private address.
    pub private_ip: Option<String>,
    /// Memory, MB.
    pub ram: Option<f64>,
    /// Virtual CPUs.
    pub vcpus: Option<f64>,
    /// Disk, GB.
    pub disk: Option<f64>,
    /// The image type of the server.
    pub imagetype: Option<String>,
    /// The cloud service type.
    pub cloudservicetype: Option<String>,
    /// The region.
    #[schema(rename = "__openstack_region_name")]
    pub openstack_region_name: Option<String>,
}

/// Progress and details reported by the backup engine (spec §2). Optional members may be
/// `null` or absent; a status change merges its members into the stored ones.
#[derive(ToSchema)]
pub struct ExtendInfo {
    /// Whether a policy (not a person) started the backup.
    pub auto_trigger: Option<bool>,
    /// MB/s.
    pub average_speed: Option<f64>,
    /// The backup this one was copied from.
    pub copy_from: Option<serde_json::Value>,
    /// Replication state.
    pub copy_status: Option<CopyStatus>,
    /// Why it failed: `{"Code", "Description"}`, or `{}`.
    pub fail_code: Option<FailCode>,
    /// The operation that failed.
    pub fail_op: Option<String>,
    /// Why it failed, for people.
    pub fail_reason: Option<String>,
    /// `backup` or `replication`.
    pub image_type: Option<ImageType>,
    /// Whether the backup is incremental.
    pub incremental: Option<bool>,
    /// Percent done.
    #[schema(minimum = 0, maximum = 100)]
    pub progress: Option<f64>,
    /// The availability zone of the protected server.
    #[schema(max_length = 255)]
    pub resource_az: Option<String>,
    /// The name of the protected server.
    #[schema(max_length = 255)]
    pub resource_name: Option<String>,
    /// The kind of the protected resource.
    pub resource_type: Option<String>,
    /// MB.
    pub size: Option<f64>,
    /// Deduplication ratio.
    pub space_saving_ratio: Option<f64>,
    /// When the backup finished.
    pub finished_at: Option<String>,
    /// How it can be restored.
    pub supported_restore_mode: Option<String>,
    /// Images made from the backup.
    pub os_images_data: Option<Vec<OsImage>>,
    /// Whether lazy loading is supported.
    pub support_lld: Option<bool>,
    /// The engine's task.
    pub taskid: Option<String>,
    /// The hypervisor of the protected server.
    pub hypervisor_type: Option<String>,
    /// One entry per backed-up volume.
    pub volume_backups: Option<Vec<VolumeBackup>>,
}

/// Why a backup failed; `{}` when it did not.
#[derive(ToSchema)]
pub struct FailCode {
    /// The engine's error code.
    #[schema(rename = "Code")]
    pub code: Option<String>,
    /// Its text.
    #[schema(rename = "Description")]
    pub description: Option<String>,
}

/// An image made from a backup.
#[derive(ToSchema)]
pub struct OsImage {
    /// The image.
    pub image_id: Option<String>,
}

/// The backup of one volume.
#[derive(ToSchema)]
pub struct VolumeBackup {
    /// The volume backup's id.
    pub id: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Its status.
    pub status: Option<String>,
    /// Whether the volume boots the server.
    pub bootable: Option<bool>,
    /// Whether the backup is incremental.
    pub incremental: Option<bool>,
    /// `backup` or `replication`.
    pub image_type: Option<String>,
    /// MB.
    pub size: Option<f64>,
    /// MB/s.
    pub average_speed: Option<f64>,
    /// Deduplication ratio.
    pub space_saving_ratio: Option<f64>,
    /// The volume.
    pub source_volume_id: Option<String>,
    /// GB.
    pub source_volume_size: Option<f64>,
    /// The volume's name.
    pub source_volume_name: Option<String>,
    /// The snapshot the backup was made from.
    pub snapshot_id: Option<String>,
}

/// Replication state of a backup.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum CopyStatus {
    /// Not replicated.
    Na,
    /// Queued.
    WaitingCopy,
    /// Being copied.
    Copying,
    /// Copied.
    Success,
    /// Failed.
    Fail,
}

/// The kind of a backup image.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ImageType {
    /// A backup.
    Backup,
    /// A replica.
    Replication,
}
