//! The authenticated caller and the authorisation rules of wire contract §5: own tenant or
//! administrator, `all_tenants` for administrators only, ingest for the service role only.

use csbs_domain::ProjectId;

use crate::{AccessDenied, AuthSettings, KeyError, RoleNames, ServiceTenants};

/// Who sent a request whose token passed validation.
///
/// Made only by token validation (JWT or Keystone), which also decides from the configured role
/// names whether the caller is an administrator or a backup engine. Role names match exactly
/// (case-sensitive), as do project ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The `sub` claim, or the Keystone token's user id.
    pub user: String,
    /// The caller's own tenant: the `project_id` claim, or the Keystone token's project scope.
    /// `None` for a Keystone token scoped to a domain or to nothing, which reaches a tenant's
    /// path only with the administrator role.
    pub project_id: Option<ProjectId>,
    /// The `roles` claim, or the Keystone token's role names (implied roles included).
    pub roles: Vec<String>,
    is_admin: bool,
    is_service: bool,
    service_tenants: ServiceTenants,
}

impl Caller {
    pub(crate) fn new(
        user: String,
        project_id: Option<ProjectId>,
        roles: Vec<String>,
        rules: &RoleRules,
    ) -> Self {
        let is_admin = rules.admin.any_in(&roles);
        let is_service = rules.service.any_in(&roles);
        let service_tenants = rules.service_tenants;
        Self {
            user,
            project_id,
            roles,
            is_admin,
            is_service,
            service_tenants,
        }
    }

    /// Whether the caller holds the configured administrator role.
    pub fn is_admin(&self) -> bool {
        self.is_admin
    }

    /// Whether the caller holds the configured service role (a backup engine).
    pub fn is_service(&self) -> bool {
        self.is_service
    }

    /// May the caller act on `path_project`? Yes for its own project, and for any project if it
    /// is an administrator.
    pub fn authorize_project(&self, path_project: &ProjectId) -> Result<(), AccessDenied> {
        if self.is_admin || self.project_id.as_ref() == Some(path_project) {
            return Ok(());
        }
        Err(AccessDenied::new(match &self.project_id {
            Some(own) => {
                format!("token project '{own}' does not match path project '{path_project}'")
            }
            None => format!(
                "the token is scoped to no project (a domain-scoped or unscoped token) and \
                 cannot act on project '{path_project}'"
            ),
        }))
    }

    /// May the caller query every tenant at once (`all_tenants=true`)? Administrators only.
    pub fn authorize_all_tenants(&self) -> Result<(), AccessDenied> {
        if self.is_admin {
            return Ok(());
        }
        Err(AccessDenied::new(
            "all_tenants=true needs the administrator role",
        ))
    }

    /// May the caller use the ingest API? Only holders of the service role; administrators are
    /// not backup engines and do not pass.
    pub fn authorize_ingest(&self) -> Result<(), AccessDenied> {
        if self.is_service {
            return Ok(());
        }
        Err(AccessDenied::new("the ingest API needs the service role"))
    }

    /// May this backup engine write into `path_project`? With `auth.service_tenants = any`
    /// (the default) into every tenant; with `own` only into its token's project.
    pub fn authorize_ingest_into(&self, path_project: &ProjectId) -> Result<(), AccessDenied> {
        self.authorize_ingest()?;
        if self.service_tenants == ServiceTenants::Own
            && self.project_id.as_ref() != Some(path_project)
        {
            let own = self.project_id.as_ref().map_or("(none)", ProjectId::as_str);
            return Err(AccessDenied::new(format!(
                "this service token may write only into its own project '{own}' \
                 (auth.service_tenants = own), not '{path_project}'"
            )));
        }
        Ok(())
    }
}

/// What the configured role names make of a caller's roles.
#[derive(Debug, Clone)]
pub(crate) struct RoleRules {
    pub(crate) admin: RoleNames,
    pub(crate) service: RoleNames,
    pub(crate) service_tenants: ServiceTenants,
}

impl RoleRules {
    /// The role settings, refused when a list is empty or names a blank role (which would
    /// match every token with an empty role string).
    pub(crate) fn from_settings(settings: &AuthSettings) -> Result<Self, KeyError> {
        for (setting, names) in [
            ("admin_role", &settings.admin_role),
            ("service_role", &settings.service_role),
        ] {
            if names.is_blank() {
                return Err(KeyError::EmptySetting { setting });
            }
        }
        Ok(Self {
            admin: settings.admin_role.clone(),
            service: settings.service_role.clone(),
            service_tenants: settings.service_tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: &str) -> ProjectId {
        ProjectId::parse("project_id", id).unwrap()
    }

    fn rules(admin: &str, service: &str, service_tenants: ServiceTenants) -> RoleRules {
        RoleRules {
            admin: RoleNames::new([admin]),
            service: RoleNames::new([service]),
            service_tenants,
        }
    }

    fn caller(project_id: &str, roles: &[&str]) -> Caller {
        Caller::new(
            "user".to_owned(),
            Some(project(project_id)),
            roles.iter().map(|r| (*r).to_owned()).collect(),
            &rules("admin", "csbs_service", ServiceTenants::Any),
        )
    }

    #[test]
    fn roles_are_recognised() {
        let rows: &[(&[&str], bool, bool)] = &[
            (&[], false, false),
            (&["member"], false, false),
            (&["admin"], true, false),
            (&["csbs_service"], false, true),
            (&["member", "admin", "csbs_service"], true, true),
            (&["Admin"], false, false),
            (&["admin "], false, false),
            (&["administrator"], false, false),
        ];
        for (roles, admin, service) in rows {
            let caller = caller("p1", roles);
            assert_eq!(caller.is_admin(), *admin, "{roles:?}");
            assert_eq!(caller.is_service(), *service, "{roles:?}");
        }
    }

    #[test]
    fn project_access() {
        let rows: &[(&str, &[&str], &str, bool)] = &[
            ("p1", &[], "p1", true),
            ("p1", &["member"], "p2", false),
            ("p1", &["csbs_service"], "p2", false),
            ("p1", &["admin"], "p2", true),
            ("p1", &["admin"], "p1", true),
            ("abc", &[], "ABC", false),
        ];
        for (own, roles, path, allowed) in rows {
            let result = caller(own, roles).authorize_project(&project(path));
            assert_eq!(result.is_ok(), *allowed, "{own} {roles:?} -> {path}");
        }
        let denied = caller("a", &[])
            .authorize_project(&project("b"))
            .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "token project 'a' does not match path project 'b'"
        );
        assert_eq!(denied.reason(), denied.to_string());
    }

    #[test]
    fn all_tenants_and_ingest() {
        let rows: &[(&[&str], bool, bool)] = &[
            (&[], false, false),
            (&["admin"], true, false),
            (&["csbs_service"], false, true),
            (&["admin", "csbs_service"], true, true),
        ];
        for (roles, all_tenants, ingest) in rows {
            let caller = caller("p1", roles);
            assert_eq!(
                caller.authorize_all_tenants().is_ok(),
                *all_tenants,
                "{roles:?}"
            );
            assert_eq!(caller.authorize_ingest().is_ok(), *ingest, "{roles:?}");
        }
        assert_eq!(
            caller("p1", &[])
                .authorize_all_tenants()
                .unwrap_err()
                .to_string(),
            "all_tenants=true needs the administrator role"
        );
        assert_eq!(
            caller("p1", &["admin"])
                .authorize_ingest()
                .unwrap_err()
                .to_string(),
            "the ingest API needs the service role"
        );
    }

    #[test]
    fn configured_role_names_are_used() {
        let caller = Caller::new(
            "u".to_owned(),
            Some(project("p1")),
            vec!["cloud_admin".to_owned(), "engine".to_owned()],
            &rules("cloud_admin", "engine", ServiceTenants::Any),
        );
        assert!(caller.is_admin());
        assert!(caller.is_service());
        let listed = RoleRules {
            admin: RoleNames::new(["admin", "cloud_admin"]),
            service: RoleNames::new(["csbs_service", "service"]),
            service_tenants: ServiceTenants::Any,
        };
        let caller = Caller::new(
            "u".to_owned(),
            Some(project("p1")),
            vec!["service".to_owned()],
            &listed,
        );
        assert!(!caller.is_admin());
        assert!(caller.is_service());
    }

    #[test]
    fn a_token_without_a_project_reaches_tenants_only_as_administrator() {
        let unscoped = |roles: &[&str], tenants| {
            Caller::new(
                "u".to_owned(),
                None,
                roles.iter().map(|r| (*r).to_owned()).collect(),
                &rules("admin", "csbs_service", tenants),
            )
        };
        let member = unscoped(&["member"], ServiceTenants::Any);
        let denied = member.authorize_project(&project("p1")).unwrap_err();
        assert!(
            denied.to_string().contains("scoped to no project"),
            "{denied}"
        );
        assert!(member.authorize_all_tenants().is_err());
        let admin = unscoped(&["admin"], ServiceTenants::Any);
        assert!(admin.authorize_project(&project("p1")).is_ok());
        assert!(admin.authorize_all_tenants().is_ok());
        let engine = unscoped(&["csbs_service"], ServiceTenants::Any);
        assert!(engine.authorize_ingest_into(&project("p1")).is_ok());
        let bound = unscoped(&["csbs_service"], ServiceTenants::Own);
        let denied = bound.authorize_ingest_into(&project("p1")).unwrap_err();
        assert!(denied.to_string().contains("'(none)'"), "{denied}");
    }

    #[test]
    fn engines_write_into_any_tenant_unless_bound_to_their_own() {
        let engine = |tenants| {
            Caller::new(
                "engine".to_owned(),
                Some(project("engines")),
                vec!["csbs_service".to_owned()],
                &rules("admin", "csbs_service", tenants),
            )
        };
        let any = engine(ServiceTenants::Any);
        assert!(any.authorize_ingest_into(&project("tenant-b")).is_ok());
        assert!(any.authorize_ingest_into(&project("engines")).is_ok());
        let own = engine(ServiceTenants::Own);
        assert!(own.authorize_ingest_into(&project("engines")).is_ok());
        let denied = own.authorize_ingest_into(&project("tenant-b")).unwrap_err();
        assert!(
            denied.to_string().contains("auth.service_tenants = own"),
            "{denied}"
        );
        // Without the role, no tenant at all.
        assert!(caller("tenant-b", &[])
            .authorize_ingest_into(&project("tenant-b"))
            .is_err());
    }
}
