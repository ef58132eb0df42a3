//! `csbs-api token`: mint an HS256 token with the configured secret, or the one `serve`
//! generated in the data folder.

use anyhow::Context;
use csbs_auth::{mint_hs256, Claims, IfMissing};
use csbs_domain::ProjectId;

use crate::cli::TokenArgs;
use crate::settings::Settings;

/// Prints a token for `args`.
pub fn run(mut settings: Settings, args: &TokenArgs) -> anyhow::Result<()> {
    settings
        .auth
        .with_generated_secret(&settings.data_dir, IfMissing::Refuse)?;
    let secret = settings.auth.hmac_secret.as_ref().context(
        "no HMAC secret is configured (only public keys or Keystone): tokens come from your \
         identity provider",
    )?;
    let project = ProjectId::parse("--project-id", &args.project_id)?;
    let mut claims = Claims::new(args.user.clone(), &project, args.roles.clone(), args.ttl);
    claims.iss = settings.auth.issuer.clone();
    claims.aud = settings.auth.audience.clone();
    println!("{}", mint_hs256(secret, &claims)?);
    Ok(())
}
