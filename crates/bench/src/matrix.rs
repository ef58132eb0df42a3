//! The filter matrix: for the largest tenant, the median tenant and all tenants, every single
//! filter, every pair of the filters consoles combine, and status with a time range and one
//! more, each as a count and as a first list page. The SQL side is the plain statement for the
//! same meaning (`status <> 'deleted'` when no status is asked for), on the same indexes.
//!
//! The values are taken from the data, so that every filter selects something: the scope's
//! most common policy, the resource with the most backups (its id, name and private address),
//! the most shared backup record, and a substring that picks one server's manual backups
//! before an upgrade (well under 1% of a large tenant's items).

use anyhow::Context;
use csbs_storage::DbConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::{query_string, token, Bind, Kind, Shape, TenantPick, PAGE_LIMIT};

/// One filter: its query parameters and the SQL condition that means the same, with `?` for
/// each bind in order.
#[derive(Debug, Clone)]
struct Criterion {
    label: &'static str,
    params: Vec<(&'static str, String)>,
    condition: &'static str,
    binds: Vec<Bind>,
}

impl Criterion {
    fn text(
        label: &'static str,
        param: &'static str,
        condition: &'static str,
        value: &str,
    ) -> Self {
        Self {
            label,
            params: vec![(param, value.to_owned())],
            condition,
            binds: vec![Bind::Text(value.to_owned())],
        }
    }
}

#[derive(QueryableByName)]
struct Picked {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    value: Option<String>,
}

/// The most common value of `column` in the scope, or, when the scope has none (a small
/// tenant), across tenants: a value that then selects nothing in the scope, which is still
/// a shape to measure.
fn pick(
    conn: &mut DbConnection,
    project: Option<&str>,
    column: &str,
    extra: &str,
) -> anyhow::Result<Option<String>> {
    match most_common(conn, project, column, extra)? {
        Some(value) => Ok(Some(value)),
        None => most_common(conn, None, column, extra),
    }
}

/// The most common non-null value of `column` in the scope (`$1` is the tenant, if any).
fn most_common(
    conn: &mut DbConnection,
    project: Option<&str>,
    column: &str,
    extra: &str,
) -> anyhow::Result<Option<String>> {
    let scope = if project.is_some() {
        "project_id = $1"
    } else {
        "true"
    };
    let sql = format!(
        "SELECT {column} AS value FROM backup_items WHERE {scope} AND {column} IS NOT NULL \
         AND {column} <> '' {extra} GROUP BY {column} ORDER BY count(*) DESC, {column} LIMIT 1"
    );
    let query = diesel::sql_query(sql).into_boxed();
    let query = match project {
        Some(project) => query.bind::<Text, _>(project.to_owned()),
        None => query,
    };
    Ok(query
        .get_result::<Picked>(conn)
        .optional()?
        .and_then(|row| row.value))
}

/// The filters of one scope, with values picked from its data.
fn criteria(
    conn: &mut DbConnection,
    project: Option<&str>,
    range: (i64, i64),
) -> anyhow::Result<Vec<Criterion>> {
    let mut criteria = vec![
        Criterion::text("status", "status", "status = ?", "available"),
        Criterion {
            label: "time range",
            params: vec![
                ("start_time", csbs_domain::format_timestamp(range.0)),
                ("end_time", csbs_domain::format_timestamp(range.1)),
            ],
            condition: "created_at_us >= ? AND created_at_us <= ?",
            binds: vec![Bind::BigInt(range.0), Bind::BigInt(range.1)],
        },
        Criterion::text(
            "resource_type",
            "resource_type",
            "resource_type = ?",
            "OS::Cinder::Volume",
        ),
        Criterion::text("az", "az", "resource_az = ?", "eu-de-02"),
        Criterion::text("image_type", "image_type", "image_type = ?", "replication"),
    ];
    let policy = pick(conn, project, "policy_id", "")?.context("no policy")?;
    criteria.push(Criterion::text(
        "policy_id",
        "policy_id",
        "policy_id = ?",
        &policy,
    ));
    let upgrade = pick(conn, project, "name", "AND name LIKE 'before-upgrade-%'")?
        .context("no upgrade backup")?;
    let resource = pick(conn, project, "resource_id", "")?.context("no resource")?;
    let resource_name: Option<String> = diesel::sql_query(
        "SELECT resource_name AS value FROM backup_items WHERE resource_id = $1 LIMIT 1",
    )
    .bind::<Text, _>(&resource)
    .get_result::<Picked>(conn)?
    .value;
    let address: Option<String> = diesel::sql_query(
        "SELECT private_ip AS value FROM backup_items WHERE resource_id = $1 LIMIT 1",
    )
    .bind::<Text, _>(&resource)
    .get_result::<Picked>(conn)?
    .value;
    let checkpoint = pick(conn, project, "checkpoint_id", "")?.context("no checkpoint")?;
    criteria.push(Criterion {
        label: "name",
        params: vec![("name", upgrade.clone())],
        condition: "name LIKE ?",
        binds: vec![Bind::Text(format!("%{upgrade}%"))],
    });
    let resource_name = resource_name.context("no resource name")?;
    criteria.push(Criterion {
        label: "resource_name",
        params: vec![("resource_name", resource_name.clone())],
        condition: "resource_name LIKE ?",
        binds: vec![Bind::Text(format!("%{resource_name}%"))],
    });
    criteria.push(Criterion::text(
        "resource_id",
        "resource_id",
        "resource_id = ?",
        &resource,
    ));
    criteria.push(Criterion::text(
        "checkpoint_id",
        "checkpoint_id",
        "checkpoint_id = ?",
        &checkpoint,
    ));
    let address = address.context("no address")?;
    criteria.push(Criterion {
        label: "ip",
        params: vec![("ip", address.clone())],
        condition: "(private_ip = ? OR eip = ?)",
        binds: vec![Bind::Text(address.clone()), Bind::Text(address)],
    });
    Ok(criteria)
}

/// The combinations measured: every single filter, every pair of the first eight (status,
/// time range, the four dimensions, the two substrings), and status with a time range and
/// each of the dimensions and `name`.
fn combinations(criteria: &[Criterion]) -> Vec<Vec<&Criterion>> {
    let mut combinations: Vec<Vec<&Criterion>> = criteria.iter().map(|c| vec![c]).collect();
    let paired = &criteria[..8.min(criteria.len())];
    for (i, a) in paired.iter().enumerate() {
        for b in &paired[i + 1..] {
            combinations.push(vec![a, b]);
        }
    }
    for third in &paired[2..] {
        if third.label != "resource_name" {
            combinations.push(vec![&criteria[0], &criteria[1], third]);
        }
    }
    combinations
}

/// The matrix's shapes for the picked tenants and across tenants.
pub(crate) fn shapes(
    conn: &mut DbConnection,
    tenants: &[TenantPick],
    range_of: impl Fn(&mut DbConnection, Option<&str>) -> anyhow::Result<(i64, i64)>,
) -> anyhow::Result<Vec<Shape>> {
    let mut shapes = Vec::new();
    let mut scopes: Vec<(String, Option<String>)> = tenants
        .iter()
        .map(|t| (t.label.clone(), Some(t.project_id.clone())))
        .collect();
    scopes.push(("all tenants".to_owned(), None));
    let admin = token("ops", &["admin"])?;
    for (label, project) in scopes {
        let range = range_of(conn, project.as_deref())?;
        let criteria = criteria(conn, project.as_deref(), range)?;
        let (base, token, order) = match &project {
            Some(project) => (
                format!("/v1/{project}/checkpoint_items"),
                token(project, &[])?,
                "ORDER BY created_at_us DESC, id DESC",
            ),
            None => (
                "/v1/ops/checkpoint_items".to_owned(),
                admin.clone(),
                "ORDER BY created_at_us DESC, id DESC, project_id DESC",
            ),
        };
        for combination in combinations(&criteria) {
            let mut params: Vec<(&str, String)> = Vec::new();
            let mut conditions = Vec::new();
            let mut binds = Vec::new();
            if let Some(project) = &project {
                conditions.push("project_id = ?".to_owned());
                binds.push(Bind::Text(project.clone()));
            } else {
                params.push(("all_tenants", "true".to_owned()));
            }
            if !combination.iter().any(|c| c.label == "status") {
                conditions.push("status <> 'deleted'".to_owned());
            }
            for criterion in &combination {
                params.extend(criterion.params.iter().cloned());
                conditions.push(criterion.condition.to_owned());
                binds.extend(criterion.binds.iter().cloned());
            }
            let mut position = 0;
            let condition = conditions
                .join(" AND ")
                .split('?')
                .enumerate()
                .map(|(i, piece)| {
                    if i == 0 {
                        piece.to_owned()
                    } else {
                        position += 1;
                        format!("${position}{piece}")
                    }
                })
                .collect::<String>();
            let what = combination
                .iter()
                .map(|c| c.label)
                .collect::<Vec<_>>()
                .join(" + ");
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let query = query_string(&pairs);
            shapes.push(Shape {
                name: format!("matrix {label}: count {what}"),
                path: format!("{base}/count?{query}"),
                token: token.clone(),
                kind: Kind::Count,
                sql: format!("SELECT count(*) AS n FROM backup_items WHERE {condition}"),
                binds: binds.clone(),
            });
            shapes.push(Shape {
                name: format!("matrix {label}: page {what}"),
                path: format!("{base}?limit={PAGE_LIMIT}&{query}"),
                token: token.clone(),
                kind: Kind::Page,
                sql: format!(
                    "SELECT id, document FROM backup_items WHERE {condition} {order} LIMIT {}",
                    PAGE_LIMIT + 1
                ),
                binds,
            });
        }
    }
    Ok(shapes)
}
