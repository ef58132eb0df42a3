//! Realistic, deterministic sample backups, for `csbs-api seed` and the benchmark.
//!
//! Every item is a pure function of the seed, its index and the number of projects: any range
//! of indexes can be generated on its own, on any thread and in any order, and the same
//! arguments always give the same item. (Within one build: the generator is rand's `StdRng`,
//! whose algorithm rand does not promise to keep across its versions.)
//!
//! What makes the data look like a real region's:
//! - tenants are skewed: one holds about 60% of the items, the others share the rest in a
//!   Zipf-like way (the k-th of them ∝ 1/k); the first item of each tenant comes first, so
//!   that with at least as many items as tenants every tenant has some;
//! - items come in blocks of sixteen consecutive indexes that belong to one tenant and back
//!   up four resources of it, unevenly, so that each resource has several backups;
//! - resources are mostly servers (`OS::Nova::Server`), some volumes, in a few availability
//!   zones, with private addresses (a few IPv6) and sometimes no public one (`"eip": ""`);
//! - about 85% of the items are `available`; the rest are errors, deletions and work in
//!   progress, with times, progress and `protected_at` to match;
//! - automatic backups carry their policy's id and are made at the policy's hour; manual ones
//!   have no policy;
//! - `created_at` spreads over three years (more recent years hold more backups), with
//!   microseconds; a few items of a block share a backup record (`checkpoint_id`).

use csbs_domain::{format_timestamp, BackupRecord, ItemError, Micros};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The first instant items are created at: 2022-01-01T00:00:00Z.
pub const SPAN_START: Micros = 1_640_995_200_000_000;
/// How many days `created_at` spreads over (three years, one of them a leap year).
pub const SPAN_DAYS: i64 = 1096;

const DAY_MICROS: i64 = 86_400_000_000;
const SECOND_MICROS: i64 = 1_000_000;
/// Consecutive indexes that share a tenant and a set of resources.
const ITEMS_PER_BLOCK: u64 = 16;
/// How a block's items divide among its four resources: a few resources have most backups.
const RESOURCE_WEIGHTS: [f64; 4] = [0.4, 0.25, 0.2, 0.15];
/// Items of a block that may share a backup record come from the same quarter of the block.
const CHECKPOINT_GROUP: u64 = 4;
/// The share of items whose backup record also covers neighbouring items.
const SHARED_CHECKPOINT_SHARE: f64 = 0.15;
/// The share of the largest tenant when there are several.
const LARGEST_TENANT_SHARE: f64 = 0.6;

// Domain separation of the random streams: one stream per kind of thing, so that, e.g., a
// tenant's project id never depends on how many items were drawn.
const STREAM_PROJECT: u64 = 1;
const STREAM_POLICY: u64 = 2;
const STREAM_BLOCK: u64 = 3;
const STREAM_RESOURCE: u64 = 4;
const STREAM_ITEM: u64 = 5;
const STREAM_CHECKPOINT: u64 = 6;

/// Statuses and their shares, summing to 1.
const STATUS_WEIGHTS: [(&str, f64); 9] = [
    ("available", 0.85),
    ("error", 0.05),
    ("deleted", 0.04),
    ("waiting_delete", 0.015),
    ("protecting", 0.015),
    ("deleting", 0.01),
    ("waiting_protect", 0.01),
    ("waiting_restore", 0.005),
    ("restoring", 0.005),
];

const AVAILABILITY_ZONES: [(&str, f64); 3] =
    [("eu-de-01", 0.45), ("eu-de-02", 0.35), ("eu-de-03", 0.2)];

const WORKLOADS: [&str; 16] = [
    "web", "db", "app", "cache", "api", "batch", "mq", "search", "k8s-node", "ci", "git", "erp",
    "crm", "vpn", "bastion", "mail",
];

/// One tenant of the sample data.
#[derive(Debug, Clone)]
struct Tenant {
    project_id: String,
    /// Backup policies: (id, the hour of day they run at).
    policies: Vec<(String, i64)>,
}

/// One backed-up server or volume: what all of its backups have in common.
#[derive(Debug, Clone)]
struct Resource {
    id: String,
    server: bool,
    name: String,
    az: &'static str,
    private_ip: String,
    eip: String,
    ram: u32,
    vcpus: u32,
    disk_gb: u32,
    policy: usize,
}

/// The generator: seed and tenants, with what every item needs computed once.
#[derive(Debug, Clone)]
pub struct SampleData {
    seed: u64,
    tenants: Vec<Tenant>,
    /// Cumulative tenant shares, for drawing a block's tenant.
    cumulative: Vec<f64>,
}

impl SampleData {
    /// The generator for `seed` with `projects` tenants (at least one).
    pub fn new(seed: u64, projects: usize) -> Self {
        let projects = projects.max(1);
        let tenants = (0..projects as u64)
            .map(|t| {
                let mut rng = stream(&[seed, STREAM_PROJECT, t]);
                let project_id = format!("{:032x}", rng.random::<u128>());
                let policy_count = rng.random_range(1..=4u64);
                let policies = (0..policy_count)
                    .map(|p| {
                        let mut rng = stream(&[seed, STREAM_POLICY, t, p]);
                        (uuid(&mut rng), rng.random_range(0..24i64))
                    })
                    .collect();
                Tenant {
                    project_id,
                    policies,
                }
            })
            .collect();
        Self {
            seed,
            tenants,
            cumulative: cumulative(&tenant_shares(projects)),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The tenants' project ids, the largest tenant first, then in decreasing expected size.
    pub fn project_ids(&self) -> Vec<&str> {
        self.tenants.iter().map(|t| t.project_id.as_str()).collect()
    }

    /// Item `index`, as an import line: the object of spec §2 plus `project_id` and
    /// `policy_id`.
    pub fn item(&self, index: u64) -> Value {
        let block = index / ITEMS_PER_BLOCK;
        let mut block_rng = stream(&[self.seed, STREAM_BLOCK, block]);
        let drawn = pick_cumulative(&self.cumulative, block_rng.random());
        // The first items go to each tenant in turn, so that every tenant asked for has some
        // as soon as there are as many items as tenants; the rest follow their block's draw.
        let tenant_index = usize::try_from(index)
            .ok()
            .filter(|i| *i < self.tenants.len())
            .unwrap_or(drawn);
        let tenant = &self.tenants[tenant_index];

        let mut rng = stream(&[self.seed, STREAM_ITEM, index]);
        let slot = pick(&RESOURCE_WEIGHTS.map(|w| ((), w)), rng.random());
        let resource = self.resource(block, slot as u64, tenant);
        let status = STATUS_WEIGHTS[pick(&STATUS_WEIGHTS, rng.random())].0;

        // Automatic backups follow the resource's policy, at the policy's hour.
        let (policy_id, policy_hour) = &tenant.policies[resource.policy % tenant.policies.len()];
        let automatic = rng.random_bool(0.75);
        // Growth: a power below one puts more backups in the recent years.
        let day = ((rng.random::<f64>().powf(0.7) * SPAN_DAYS as f64) as i64).min(SPAN_DAYS - 1);
        let time_of_day = if automatic {
            policy_hour * 3600 * SECOND_MICROS + rng.random_range(0..20 * 60 * SECOND_MICROS)
        } else {
            rng.random_range(0..DAY_MICROS)
        };
        let created = SPAN_START + day * DAY_MICROS + time_of_day;

        let size_mb = u64::from(resource.disk_gb) * 1024 * rng.random_range(5..=90u64) / 100;
        let average_speed = round2(rng.random_range(5.0..150.0));
        let duration = (size_mb as f64 / average_speed).max(30.0) as i64 * SECOND_MICROS;
        let protected = created + duration;
        let later = protected + rng.random_range(SECOND_MICROS..90 * DAY_MICROS);
        let (protected_at, updated, progress) = match status {
            "waiting_protect" => (None, created + rng.random_range(0..5 * SECOND_MICROS), 0),
            "protecting" => {
                let progress = rng.random_range(1..100i64);
                (None, created + duration * progress / 100, progress)
            }
            "error" if rng.random_bool(0.7) => {
                let progress = rng.random_range(0..100i64);
                (None, created + duration * progress / 100 + 1, progress)
            }
            "error" => (Some(protected), later, 100),
            "available" if rng.random_bool(0.9) => (
                Some(protected),
                protected + rng.random_range(0..2 * SECOND_MICROS),
                100,
            ),
            _ => (Some(protected), later, 100),
        };

        let stamp: String = format_timestamp(created)
            .chars()
            .filter(char::is_ascii_digit)
            .take(12)
            .collect();
        let name = if automatic {
            format!("autobackup_{}_{stamp}", resource.name)
        } else {
            match rng.random_range(0..4u8) {
                0 => format!("manualbk_{:04x}", rng.random::<u16>()),
                1 => format!("before-upgrade-{}", resource.name),
                _ => format!("manual-{}-{}", resource.name, &stamp[..8]),
            }
        };
        let description = match (automatic, rng.random_range(0..4u8)) {
            (true, _) | (false, 0 | 1) => "",
            (false, 2) => "before maintenance",
            (false, _) => "requested by operations",
        };
        let checkpoint_id = if rng.random_bool(SHARED_CHECKPOINT_SHARE) {
            let group = (index % ITEMS_PER_BLOCK) / CHECKPOINT_GROUP;
            uuid(&mut stream(&[self.seed, STREAM_CHECKPOINT, block, group]))
        } else {
            uuid(&mut rng)
        };
        let tags = if rng.random_bool(0.2) {
            let env = if rng.random_bool(0.7) {
                "production"
            } else {
                "test"
            };
            json!([{"key": "env", "value": env}])
        } else {
            json!([])
        };
        let image_type = if rng.random_bool(0.92) {
            "backup"
        } else {
            "replication"
        };
        let (fail_code, fail_op, fail_reason) = if status == "error" {
            (
                json!({"Code": "BackupService.9900", "Description": "snapshot creation failed"}),
                "backup",
                "Failed to create the snapshot of the resource.",
            )
        } else {
            (json!({}), "", "")
        };
        let resource_type = if resource.server {
            "OS::Nova::Server"
        } else {
            "OS::Cinder::Volume"
        };
        let disk = if resource.server { resource.disk_gb } else { 0 };
        let policy_id = automatic.then_some(policy_id.as_str());
        let id = uuid(&mut rng);
        let incremental = rng.random_bool(0.85);
        let space_saving_ratio = round2(rng.random_range(1.0..25.0));

        json!({
            "id": id,
            "name": name,
            "description": description,
            "status": status,
            "checkpoint_id": checkpoint_id,
            "resource_id": resource.id,
            "resource_type": resource_type,
            "created_at": format_timestamp(created),
            "updated_at": format_timestamp(updated),
            "protected_at": protected_at.map(format_timestamp),
            "tags": tags,
            "backup_data": {
                "eip": resource.eip,
                "private_ip": resource.private_ip,
                "ram": resource.ram,
                "vcpus": resource.vcpus,
                "disk": disk,
                "imagetype": "gold",
                "cloudservicetype": "QEMU",
                "__openstack_region_name": ""
            },
            "extend_info": {
                "auto_trigger": automatic,
                "incremental": incremental,
                "progress": progress,
                "size": size_mb,
                "average_speed": average_speed,
                "space_saving_ratio": space_saving_ratio,
                "copy_status": "na",
                "copy_from": null,
                "fail_code": fail_code,
                "fail_op": fail_op,
                "fail_reason": fail_reason,
                "image_type": image_type,
                "resource_az": resource.az,
                "resource_name": resource.name,
                "resource_type": resource_type,
                "finished_at": protected_at.map(format_timestamp),
                "supported_restore_mode": "backup",
                "support_lld": true,
                "hypervisor_type": "QEMU",
                "os_images_data": [],
                "volume_backups": []
            },
            "project_id": tenant.project_id,
            "policy_id": policy_id
        })
    }

    /// Item `index`, validated as an import would validate it.
    pub fn record(&self, index: u64) -> Result<BackupRecord, ItemError> {
        BackupRecord::from_json(self.item(index))
    }

    /// The resource `slot` of `block`: the same for every item of the block that backs it up.
    fn resource(&self, block: u64, slot: u64, tenant: &Tenant) -> Resource {
        let mut rng = stream(&[self.seed, STREAM_RESOURCE, block, slot]);
        let id = uuid(&mut rng);
        let server = rng.random_bool(0.85);
        let workload = WORKLOADS[rng.random_range(0..WORKLOADS.len())];
        let number = rng.random_range(1..100u32);
        let name = if server {
            format!("ecs-{workload}-{number:02}")
        } else {
            format!("evs-{workload}-data-{number:02}")
        };
        let az = AVAILABILITY_ZONES[pick(&AVAILABILITY_ZONES, rng.random())].0;
        let private_ip = if rng.random_bool(0.07) {
            format!(
                "fd00:{:x}:{:x}::{:x}",
                rng.random::<u16>(),
                rng.random::<u16>(),
                rng.random_range(1..0xffffu32)
            )
        } else if rng.random_bool(0.6) {
            format!(
                "192.168.{}.{}",
                rng.random_range(0..4u8),
                rng.random_range(2..255u8)
            )
        } else {
            format!(
                "10.{}.{}.{}",
                rng.random::<u8>(),
                rng.random::<u8>(),
                rng.random_range(2..255u8)
            )
        };
        // Real engines report an empty string for a server without a public address.
        let eip = if rng.random_bool(0.35) {
            String::new()
        } else {
            format!(
                "80.158.{}.{}",
                rng.random::<u8>(),
                rng.random_range(1..255u8)
            )
        };
        let ram = [1024, 2048, 4096, 8192, 16384, 32768][rng.random_range(0..6)];
        let vcpus = [1, 2, 4, 8, 16][rng.random_range(0..5)];
        let disk_gb = [40, 80, 100, 200, 500, 1000][rng.random_range(0..6)];
        let policy = rng.random_range(0..tenant.policies.len().max(1));
        Resource {
            id,
            server,
            name,
            az,
            private_ip,
            eip,
            ram,
            vcpus,
            disk_gb,
            policy,
        }
    }
}

/// Item `index` of the data for `seed` and `projects` tenants. Builds the generator each time;
/// keep a [`SampleData`] to make many items.
pub fn sample_item(seed: u64, index: u64, projects: usize) -> Value {
    SampleData::new(seed, projects).item(index)
}

/// The expected share of each tenant: the first ~60%, the others ∝ 1/k.
fn tenant_shares(projects: usize) -> Vec<f64> {
    if projects <= 1 {
        return vec![1.0];
    }
    let harmonic: f64 = (1..projects).map(|k| 1.0 / k as f64).sum();
    std::iter::once(LARGEST_TENANT_SHARE)
        .chain((1..projects).map(|k| (1.0 - LARGEST_TENANT_SHARE) / (k as f64 * harmonic)))
        .collect()
}

fn cumulative(shares: &[f64]) -> Vec<f64> {
    shares
        .iter()
        .scan(0.0, |total, share| {
            *total += share;
            Some(*total)
        })
        .collect()
}

/// The index whose cumulative share first exceeds `u` (in `0..1`).
fn pick_cumulative(cumulative: &[f64], u: f64) -> usize {
    cumulative
        .partition_point(|&c| c <= u)
        .min(cumulative.len().saturating_sub(1))
}

/// An index of `weighted`, drawn with the weights (which sum to 1) by `u` in `0..1`.
fn pick<T>(weighted: &[(T, f64)], u: f64) -> usize {
    let mut total = 0.0;
    for (i, (_, weight)) in weighted.iter().enumerate() {
        total += weight;
        if u < total {
            return i;
        }
    }
    weighted.len().saturating_sub(1)
}

/// Two decimals, as engines report speeds and ratios.
fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn uuid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

/// The random stream named by `parts`: SplitMix64 folds them into one well-mixed seed, so that
/// neighbouring indexes get unrelated streams.
fn stream(parts: &[u64]) -> StdRng {
    let seed = parts.iter().fold(0x9E37_79B9_7F4A_7C15, |state, &part| {
        let mut z = (state ^ part).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    });
    StdRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use csbs_domain::BackupStatus;

    use super::*;

    fn records(seed: u64, projects: usize, count: u64) -> Vec<BackupRecord> {
        let data = SampleData::new(seed, projects);
        (0..count).map(|i| data.record(i).unwrap()).collect()
    }

    #[test]
    fn every_tenant_asked_for_has_items_from_one_item_each() {
        for (seed, projects) in [(42, 20), (42, 50), (7, 3), (1, 200)] {
            let items = projects as u64;
            let tenants: HashSet<String> = records(seed, projects, items)
                .into_iter()
                .map(|r| r.project_id.as_str().to_owned())
                .collect();
            assert_eq!(tenants.len(), projects, "seed {seed}, {projects} projects");
        }
    }

    #[test]
    fn the_same_arguments_give_the_same_items() {
        assert_eq!(records(42, 50, 500), records(42, 50, 500));
        assert_eq!(sample_item(42, 123, 50), SampleData::new(42, 50).item(123));
        // An item does not depend on which others were generated, nor in which order.
        let data = SampleData::new(7, 10);
        let forwards: Vec<Value> = (0..64).map(|i| data.item(i)).collect();
        let backwards: Vec<Value> = (0..64).rev().map(|i| data.item(i)).collect();
        assert!(forwards.iter().eq(backwards.iter().rev()));
    }

    #[test]
    fn other_seeds_give_other_items_and_projects() {
        let a = SampleData::new(1, 5);
        let b = SampleData::new(2, 5);
        assert_ne!(a.project_ids(), b.project_ids());
        assert_ne!(a.item(0), b.item(0));
        assert_ne!(a.item(0), a.item(1));
    }

    #[test]
    fn project_ids_are_32_lowercase_hex_characters_and_distinct() {
        let data = SampleData::new(42, 50);
        let ids = data.project_ids();
        assert_eq!(ids.len(), 50);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 50);
        for id in ids {
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }

    #[test]
    fn the_data_is_realistically_skewed() {
        let data = SampleData::new(42, 50);
        let all = records(42, 50, 20_000);
        let share = |count: usize| count as f64 / all.len() as f64;

        let mut per_tenant: HashMap<&str, usize> = HashMap::new();
        for r in &all {
            *per_tenant.entry(r.project_id.as_str()).or_default() += 1;
        }
        let largest = share(per_tenant[data.project_ids()[0]]);
        assert!((0.55..0.65).contains(&largest), "largest tenant {largest}");
        assert!(per_tenant.len() > 30, "{} tenants", per_tenant.len());

        let available = share(
            all.iter()
                .filter(|r| r.status == BackupStatus::Available)
                .count(),
        );
        assert!((0.82..0.88).contains(&available), "available {available}");
        let statuses: HashSet<_> = all.iter().map(|r| r.status).collect();
        assert_eq!(statuses.len(), 9, "every status occurs");

        let servers = share(
            all.iter()
                .filter(|r| r.resource_type == "OS::Nova::Server")
                .count(),
        );
        assert!((0.75..0.95).contains(&servers), "servers {servers}");

        let resources: HashSet<_> = all.iter().map(|r| &r.resource_id).collect();
        let per_resource = all.len() as f64 / resources.len() as f64;
        assert!(
            (2.5..6.0).contains(&per_resource),
            "{per_resource} per resource"
        );

        let checkpoints: HashSet<_> = all.iter().map(|r| &r.checkpoint_id).collect();
        assert!(checkpoints.len() < all.len(), "some items share a record");
        assert!(checkpoints.len() > all.len() * 9 / 10, "most do not");

        let automatic = all.iter().filter(|r| r.name.starts_with("autobackup_"));
        assert!(automatic.clone().all(|r| r.policy_id.is_some()));
        assert!(all
            .iter()
            .filter(|r| r.policy_id.is_none())
            .all(|r| !r.name.starts_with("autobackup_")));
        assert!(share(automatic.count()) > 0.6);

        assert!(
            all.iter().any(|r| r.eip.is_none()),
            "some have no public IP"
        );
        assert!(all
            .iter()
            .any(|r| r.private_ip.as_deref().is_some_and(|ip| ip.contains(':'))));
        assert!(all.iter().any(|r| r.protected_at.is_none()));
        assert!(all.iter().all(|r| r.updated_at >= r.created_at));
        let last = SPAN_START + SPAN_DAYS * DAY_MICROS;
        assert!(all
            .iter()
            .all(|r| (SPAN_START..last).contains(&r.created_at)));
        let azs: HashSet<_> = all.iter().filter_map(|r| r.resource_az.clone()).collect();
        assert_eq!(azs.len(), 3);
    }

    #[test]
    fn items_keep_floats_and_microseconds() {
        let item = SampleData::new(42, 3).item(5);
        let text = item.to_string();
        assert!(item["extend_info"]["average_speed"].is_f64(), "{text}");
        assert!(item["extend_info"]["space_saving_ratio"].is_f64(), "{text}");
        let created = item["created_at"].as_str().unwrap();
        assert_eq!(
            created.len(),
            "2022-01-01T00:00:00.000000".len(),
            "{created}"
        );
        for key in ["id", "name", "status", "resource_id", "resource_type"] {
            assert!(item[key].is_string(), "{key}: {text}");
        }
    }

    #[test]
    fn one_project_takes_everything() {
        let data = SampleData::new(3, 1);
        let project = data.project_ids()[0].to_owned();
        assert!((0..100).all(|i| data.item(i)["project_id"] == project.as_str()));
        // Zero projects is read as one rather than refused.
        assert_eq!(SampleData::new(3, 0).project_ids().len(), 1);
    }
}
