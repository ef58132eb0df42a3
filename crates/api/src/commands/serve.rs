//! `csbs-api serve`: run the service until SIGINT or SIGTERM; SIGHUP reads the signing key
//! files again.

use csbs_auth::Authenticator;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::settings::Settings;
use crate::startup::Application;

/// Builds and runs the service; returns when it has shut down.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        // Before anything else: SIGHUP's default action ends the process.
        let hangups = signal(SignalKind::hangup())?;
        let application = Application::build(settings)?;
        actix_web::rt::spawn(reload_keys_on_hangup(
            hangups,
            application.state().authenticator.clone(),
        ));
        tracing::info!(port = application.port(), "csbs-api is serving");
        application.run_until_stopped().await?;
        tracing::info!("csbs-api stopped");
        Ok(())
    })
}

/// On each SIGHUP: the PEM and JWKS key files are read again, and the JWKS URL is fetched
/// again. Keys that cannot be loaded leave the ones in use in place, so a half-written file
/// never locks callers out.
async fn reload_keys_on_hangup(mut hangups: Signal, authenticator: Authenticator) {
    while hangups.recv().await.is_some() {
        match authenticator.reload_keys() {
            Ok(Some(keys)) => tracing::info!(keys, "SIGHUP: signing key files read again"),
            Ok(None) => tracing::info!("SIGHUP: no key files to read again"),
            Err(error) => tracing::error!(
                %error,
                "SIGHUP: the signing key files cannot be used; the keys in use stay"
            ),
        }
    }
}
