//! `csbs-api token`: mint an HS256 token with the configured (or generated) secret.

use anyhow::Context;
use csbs_auth::{mint_hs256, Claims};
use csbs_domain::ProjectId;

use crate::cli::TokenArgs;
use crate::settings::Settings;
use crate::signing_secret::ensure_signing_key;

/// Prints a token for `args`.
pub fn run(mut settings: Settings, args: &TokenArgs) -> anyhow::Result<()> {
    ensure_signing_key(&mut settings)?;
    let secret = settings.auth.hmac_secret.as_ref().context(
        "no HMAC secret is configured (only public keys): tokens come from your identity provider",
    )?;
    let project = ProjectId::parse("--project-id", &args.project_id)?;
    let mut claims = Claims::new(args.user.clone(), &project, args.roles.clone(), args.ttl);
    claims.iss = settings.auth.issuer.clone();
    claims.aud = settings.auth.audience.clone();
    println!("{}", mint_hs256(secret, &claims)?);
    Ok(())
}
